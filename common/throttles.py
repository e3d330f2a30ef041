"""One throttle for the whole API, with its counters in the shared cache.

Who is counted:
- a request with a valid API key (`Authorization: Api-Key <key>`): per key (its public
  prefix), at the `service` rate;
- an authenticated member (token or session): per member, at the `user` rate;
- anyone else: per client IP (`REST_FRAMEWORK["NUM_PROXIES"]` says how many proxies to
  trust in X-Forwarded-For), at the `anon` rate.

Rates come from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (env `API_SERVICE_THROTTLE`,
`API_USER_THROTTLE`, `API_ANON_THROTTLE`), read on every request. The counters live in
Django's default cache — Redis when configured, else the database cache (config/settings.py)
— so every web process shares them. If the cache cannot be reached the request is let
through and the failure logged: a throttle never turns into a 500.
"""

from __future__ import annotations

import logging

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from common.permissions import api_key_from_request

logger = logging.getLogger(__name__)


class ApiRateThrottle(SimpleRateThrottle):
    scope = "anon"

    def __init__(self):  # the scope (and so the rate) is known per request, in allow_request
        self.history = []

    def identify(self, request) -> tuple[str, str]:
        """(scope, who) for this request."""
        api_key = api_key_from_request(request)
        if api_key is not None:
            return "service", f"key:{api_key.prefix}"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return "user", f"user:{user.pk}"
        return "anon", f"ip:{self.get_ident(request)}"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.ident}

    def allow_request(self, request, view):
        self.scope, self.ident = self.identify(request)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache is down: let the request through, loudly
            logger.exception("Throttle cache unavailable; request allowed (scope %s)", self.scope)
            return True
