"""Models of the `common` app: only a proxy that keeps API tokens out of the admin's pages."""

from __future__ import annotations

from rest_framework.authtoken.models import TokenProxy

TOKEN_VISIBLE_CHARS = 6


def mask_secret(secret: str | None, visible: int = TOKEN_VISIBLE_CHARS) -> str:
    """`"1a2b3c…"`: the first `visible` characters of a secret, never the rest."""
    if not secret:
        return "—"
    return f"{secret[:visible]}…"


class MaskedToken(TokenProxy):
    """A member's API token as the admin shows it: its str() is a prefix, not the key."""

    class Meta:
        proxy = True
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        return f"{mask_secret(self.key)} ({self.user})"
