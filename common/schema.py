"""The OpenAPI schema says which errors each operation can answer, in one place.

`AutoSchema` (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to every operation the error
responses that apply to it, each with the error body (`common.api.ApiErrorSerializer`), so no
view has to list them:

| status | when it is added |
|---|---|
| 400 | the operation takes a body or query/header parameters (bad input) |
| 401 | the view has authentication classes (no or a bad token) |
| 403 | the view needs a permission (staff only, an API key, a CSRF token) |
| 404 | the path has a parameter (`/purchases/{id}/`) |
| 409 | the view lists it in `error_statuses` (a state conflict) |
| 413, 415 | the operation takes a body (too large, unsupported media type) |
| 422 | a write (POST/PUT/PATCH/DELETE) that needs a login or key: a key or reference reused |
| 429 | the view is throttled (with `Retry-After`) |

A response a view declares itself (`@extend_schema(responses={409: ...})`) is kept; one
declared without a body gets the error body. A view may list more statuses in
`error_statuses = (409, …)`.
"""

from __future__ import annotations

from drf_spectacular import openapi
from rest_framework.permissions import AllowAny

from common.api import ApiErrorSerializer

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

DESCRIPTIONS = {
    400: "Invalid input (body, query or header): nothing was written.",
    401: "Not authenticated: send `Authorization: Token <token>`.",
    403: "Not allowed: staff only, an API key is needed (`Authorization: Api-Key <key>`), or a CSRF failure.",
    404: "Not found (or not yours).",
    409: "Refused: the request conflicts with the current state; nothing was changed.",
    413: "The request body is too large.",
    415: "Unsupported media type: send `application/json`.",
    422: "An idempotency key or reference was reused with a different request.",
    429: "Too many requests: wait `Retry-After` seconds.",
}

RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"},
                               "description": "Seconds to wait before the next request."}}


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for status in sorted(self.error_statuses(operation)):
            responses.setdefault(str(status), self._error_response(status))
        for key, response in responses.items():  # an error declared without a body has the error body
            if key.isdigit() and 400 <= int(key) < 500 and "content" not in response:
                filled = self._error_response(int(key))
                responses[key] = {**response, **filled, "description": response.get("description")
                                  or filled["description"]}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_statuses(self, operation: dict) -> set[int]:
        """The error statuses this operation can answer (the module docstring's table)."""
        statuses = set(getattr(self.view, "error_statuses", ()))
        has_body = "requestBody" in operation
        parameters = operation.get("parameters", [])
        if has_body or any(p.get("in") in ("query", "header") for p in parameters):
            statuses.add(400)
        if self.view.get_authenticators():
            statuses.add(401)
        restricted = any(not isinstance(p, AllowAny) for p in self.view.get_permissions())
        if restricted:
            statuses.add(403)
        if any(p.get("in") == "path" for p in parameters):
            statuses.add(404)
        if has_body:
            statuses |= {400, 413, 415}
        if self.method in WRITE_METHODS:
            statuses.add(400)
            if restricted:  # members' and services' writes; the anonymous forms keep no keys
                statuses.add(422)
        if self.view.get_throttles():
            statuses.add(429)
        return statuses

    def _error_response(self, status: int) -> dict:
        response = self._get_response_for_code(ApiErrorSerializer, str(status), media_types=["application/json"])
        response["description"] = DESCRIPTIONS.get(status, "Error.")
        if status == 429:
            response["headers"] = {**response.get("headers", {}), **RETRY_AFTER}
        return response
