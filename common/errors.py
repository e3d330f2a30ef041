"""Service-level errors that carry an HTTP meaning.

Services raise Django `ValidationError`s (the python-api rule). Two refusals are not
"bad input" but a state the request collides with; they are subclasses, so a caller
that catches `ValidationError` still catches them, and the API maps them to their status:

- `ConflictError` → 409: the thing is no longer in a state that allows it (a second
  refund, a second approve of a withdrawal, a payout run already made).
- `IdempotencyConflict` → 422: an `Idempotency-Key` (or a deposit reference) reused
  with a different body.
- `SelfDealingError` → 403: an operator acting on their own money (approving or paying
  their own withdrawal).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError


class ConflictError(ValidationError):
    http_status = 409


class IdempotencyConflict(ValidationError):
    http_status = 422


class SelfDealingError(ValidationError):
    http_status = 403


def field_error(field: str, message: str, *, code: str,
                error_class: type[ValidationError] = ValidationError) -> ValidationError:
    """`error_class({field: message})` whose code survives.

    Django drops `code=` when the message is a dict (`ValidationError({"f": "m"}, code="c")`
    leaves the field's error with code None), so the code goes on the field's error — where
    Django forms and DRF's `get_error_detail` read it — and on the outer error's args too.
    """
    return error_class({field: ValidationError(message, code=code)}, code=code)
