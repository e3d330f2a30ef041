"""API permissions: the API key of service endpoints (payment and revenue services), and the
staff endpoints' Django permissions (`staff_with`).

Like `rest_framework_api_key`'s `HasAPIKey`, with two differences: a refusal says what is
needed (`Authorization: Api-Key <key>`, code `api_key_required`), and the key that passed
is kept on the request (`request.api_key`), so the throttle (`common.throttles`) counts
per key without checking the key a second time.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, IsAdminUser
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import BaseHasAPIKey

API_KEY_NEEDED = ("An API key is needed: send the header `Authorization: Api-Key <key>` "
                  "with a valid, unrevoked key.")


def _plausible(key: str | None) -> bool:
    # Keys are "<prefix>.<secret>" in printable ASCII; anything else is not looked up
    # (a NUL byte would be a database error).
    return bool(key) and len(key) <= 200 and key.isascii() and key.isprintable()


def api_key_from_request(request, *, model=APIKey):
    """The valid, unrevoked, unexpired API key of the request, or None."""
    cached = getattr(request, "api_key", None)
    if cached is not None:
        return cached
    key = BaseHasAPIKey.key_parser.get(request)
    if not _plausible(key):
        return None
    try:
        api_key = model.objects.get_from_key(key)
    except model.DoesNotExist:
        return None
    return None if api_key.has_expired else api_key


class HasAPIKey(BaseHasAPIKey):
    model = APIKey
    message = API_KEY_NEEDED
    code = "api_key_required"

    def has_permission(self, request, view) -> bool:
        api_key = api_key_from_request(request, model=self.model)
        if api_key is None:
            return False
        request.api_key = api_key
        return True


class StaffPermission(IsAdminUser):
    """Staff holding the Django permission the back-office asks for the same action: ``read`` for
    GET/HEAD/OPTIONS, ``write`` for the rest (``None``: staff is enough). The API and the admin
    share one permission model, so what a view-only operator cannot do in the admin they cannot
    do over the API either."""

    read: str | None = None
    write: str | None = None
    message = "Staff only, with the permission this action needs."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        needed = self.read if request.method in SAFE_METHODS else self.write
        return needed is None or request.user.has_perm(needed)


def staff_with(*, read: str | None = None, write: str | None = None) -> type[StaffPermission]:
    """A :class:`StaffPermission` needing ``read`` to read and ``write`` to write."""
    return type("StaffWith", (StaffPermission,), {"read": read, "write": write})
