"""API plumbing shared by every app: one error shape, pagination."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail) -> str:
    """The first human message in a DRF/Django error structure."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _flatten(value)
            if key in ("non_field_errors", "__all__", "detail"):
                return message
            return f"{key}: {message}"
        return ""
    if isinstance(detail, list | tuple):
        return _flatten(detail[0]) if detail else ""
    return str(detail)


def django_validation_error_detail(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in errors.messages if m] if hasattr(errors, "messages")
                else [str(e) for e in errors] for field, errors in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


def exception_handler(exc, context):
    """Every error is JSON: {"message": str, "code": str, "errors": {...}}.

    Django `ValidationError`s raised by services become 400s, so bad input never
    turns into a 500.
    """
    http_status = getattr(exc, "http_status", None)  # common.errors: 409 / 422
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_validation_error_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    else:
        code = codes if isinstance(codes, str) else "error"
        errors = {}
    response.data = {"message": _flatten(detail) or "Error.", "code": code, "errors": errors}
    if http_status is not None:
        response.status_code = http_status
    return response


def error_response(message: str, *, code: str = "invalid", http_status=status.HTTP_400_BAD_REQUEST):
    return Response({"message": message, "code": code, "errors": {}}, status=http_status)


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; responses carry `count`, `next`, `previous`, `results`."""

    default_limit = 50
    max_limit = 500
