"""API plumbing shared by every app: one error shape, pagination, JSON error pages.

Every error the API answers is JSON:

    {"message": "amount: Insufficient balance.",      # the first error, readable
     "code": "insufficient_funds",                     # the first error's code
     "errors": {"amount": ["Insufficient balance."]},  # every message, per field
     "codes": {"amount": ["insufficient_funds"]}}      # the same, as codes

`errors` and `codes` are parallel: `codes[field][i]` is the code of `errors[field][i]`.
Field errors of nested input are flattened to dotted paths (`items.0.amount`); errors
that belong to no field are under `non_field_errors`. For errors that are not about
input (401, 403, 404, 429, …) `errors` and `codes` are empty and `code` says what
happened (`not_authenticated`, `permission_denied`, `not_found`, `throttled`, …).

The codes come from where the error was raised: `ValidationError(msg, code="…")` in a
service (also `ValidationError({"field": msg}, code="…")`, whose code Django itself would
drop), DRF's own field codes (`required`, `max_value`, `invalid_choice`, …), or the
exception class. The README lists them ("Error codes").
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

try:  # Django ≥ 5.0
    from django.core.exceptions import TooManyFilesSent
except ImportError:  # pragma: no cover
    TooManyFilesSent = TooManyFieldsSent

# The largest `offset` any list accepts: far beyond any table here, far below bigint.
MAX_OFFSET = 1_000_000_000


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class ApiErrorSerializer(serializers.Serializer):
    """The error body of every API response with status 4xx/5xx (see the module docstring)."""

    message = serializers.CharField(help_text="The first error, readable.")
    code = serializers.CharField(help_text="The first error's code (README: Error codes).")
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="Messages per field (`non_field_errors` for the rest).")
    codes = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                  help_text="Codes per field, parallel to `errors`.")


# --- turning exceptions into the error body ------------------------------------------------

def _django_message(error: DjangoValidationError) -> str:
    message = error.message
    if error.params:
        message %= error.params
    return str(message)


def django_validation_error_detail(exc: DjangoValidationError) -> dict[str, list[ErrorDetail]]:
    """A Django `ValidationError` as DRF error details, keeping every code.

    `ValidationError({"field": "msg"}, code="x")` keeps "x" (Django drops a code given with
    a dict); an error with no code at all is `invalid`.
    """
    outer_code = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else None

    def details(errors) -> list[ErrorDetail]:
        return [ErrorDetail(_django_message(e), code=e.code or outer_code or "invalid") for e in errors]

    if hasattr(exc, "error_dict"):
        return {(api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): details(errors)
                for field, errors in exc.error_dict.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: details(exc.error_list)}


def _error_items(detail, path: str = "") -> Iterator[tuple[str, ErrorDetail]]:
    """(dotted field path, error) for every error in a DRF detail structure, in order."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _error_items(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list | tuple):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list | tuple):  # a nested item: its index is part of the path
                yield from _error_items(value, f"{path}.{index}" if path else str(index))
            else:
                yield from _error_items(value, path)
    else:
        code = getattr(detail, "code", None) or "invalid"
        yield path or api_settings.NON_FIELD_ERRORS_KEY, ErrorDetail(str(detail), code=code)


def error_body(detail, *, default_code: str = "error", field_errors: bool = True) -> dict:
    """The error body for a DRF `detail` (a string, list or dict of `ErrorDetail`)."""
    items = list(_error_items(detail))
    errors: dict[str, list[str]] = {}
    codes: dict[str, list[str]] = {}
    if field_errors:
        for path, error in items:
            errors.setdefault(path, []).append(str(error))
            codes.setdefault(path, []).append(error.code)
    if not items:
        return {"message": "Error.", "code": default_code, "errors": errors, "codes": codes}
    path, first = items[0]
    prefixed = field_errors and path not in (api_settings.NON_FIELD_ERRORS_KEY, "detail")
    return {"message": f"{path}: {first}" if prefixed else str(first), "code": first.code or default_code,
            "errors": errors, "codes": codes}


def _as_api_exception(exc):
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(django_validation_error_detail(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):  # the body is over DATA_UPLOAD_MAX_MEMORY_SIZE
        return RequestTooLarge()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ParseError(str(exc) or "Too many fields in the request.", code="too_many_fields")
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("Bad request.", code="bad_request")
    return exc


def exception_handler(exc, context):
    """Every error is JSON in one shape (the module docstring); codes travel to the client.

    Django `ValidationError`s raised by services become 400s (409 for
    `common.errors.ConflictError`, 422 for `IdempotencyConflict`), so bad input never
    turns into a 500; an oversized body is a 413.
    """
    http_status = getattr(exc, "http_status", None)  # common.errors: 409 / 422
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    is_validation = isinstance(exc, exceptions.ValidationError)
    default_code = exc.default_code if isinstance(exc, exceptions.APIException) else "error"
    response.data = error_body(response.data if is_validation else exc.detail, default_code=default_code,
                               field_errors=is_validation)
    if http_status is not None:
        response.status_code = http_status
    return response


def error_response(message: str, *, code: str = "invalid", http_status=status.HTTP_400_BAD_REQUEST):
    return Response({"message": message, "code": code, "errors": {}, "codes": {}}, status=http_status)


# --- Django's error pages: JSON under /api/ ------------------------------------------------
# Errors raised outside a DRF view (no URL matched, a middleware refused) reach Django's
# handlers; config/urls.py points them here so the API never answers HTML.

def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def _json_error(message: str, code: str, http_status: int) -> JsonResponse:
    return JsonResponse({"message": message, "code": code, "errors": {}, "codes": {}}, status=http_status)


def bad_request(request, exception=None):
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return _json_error(str(RequestTooLarge.default_detail), "request_too_large", 413)
        return _json_error("Bad request.", "bad_request", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return _json_error("You do not have permission to perform this action.", "permission_denied", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return _json_error("Not found.", "not_found", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return _json_error("Server error.", "server_error", 500)
    return defaults.server_error(request)


# --- pagination -----------------------------------------------------------------------------

class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; responses carry `count`, `next`, `previous`, `results`.

    `limit` is 1..500 (default 50), `offset` 0..1,000,000,000; anything else is a 400
    (`invalid_limit` / `invalid_offset`), never a database error.
    """

    default_limit = 50
    max_limit = 500
    max_offset = MAX_OFFSET

    @staticmethod
    def _bounded_int(request, name: str, *, minimum: int, maximum: int, default: int, code: str) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not minimum <= int(raw) <= maximum:
            raise exceptions.ValidationError({name: [ErrorDetail(
                f"A whole number from {minimum} to {maximum:,} is required.", code=code)]})
        return int(raw)

    def get_limit(self, request):
        return self._bounded_int(request, self.limit_query_param, minimum=1, maximum=self.max_limit,
                                 default=self.default_limit, code="invalid_limit")

    def get_offset(self, request):
        return self._bounded_int(request, self.offset_query_param, minimum=0, maximum=self.max_offset,
                                 default=0, code="invalid_offset")

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
                  self.offset_query_param: {"minimum": 0, "maximum": self.max_offset, "default": 0}}
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
