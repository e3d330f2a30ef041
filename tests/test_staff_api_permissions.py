"""The staff API asks for the same Django permissions as the back-office: a staff login that may
only view in the admin cannot refund, pay bonuses, move withdrawals, buy or change the buy-back
settings over the API either (403, nothing written); with the permission the request gets through
(whatever the action then answers, it is not a 403)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# (method, path, body, the permission it needs)
ACTIONS = [
    ("post", "/api/purchases/999999/refund/", {"reason": "x"}, "purchases.add_refund"),
    ("get", "/api/mlm/payouts/", None, "mlm.view_payoutrun"),
    ("get", "/api/mlm/payouts/preview/", None, "mlm.view_payoutrun"),
    ("post", "/api/mlm/payouts/run/", {"month": "2000-01"}, "mlm.add_payoutrun"),
    ("get", "/api/withdrawals/", None, "withdrawals.view_withdrawal"),
    ("post", "/api/withdrawals/999999/approve/", None, "withdrawals.approve_withdrawal"),
    ("post", "/api/withdrawals/999999/mark-paid/", {"tx_ref": "0xabc"}, "withdrawals.pay_withdrawal"),
    ("post", "/api/withdrawals/999999/reject/", {"reason": "x"}, "withdrawals.change_withdrawal"),
    ("get", "/api/tokens/settings/", None, "tokens.view_buyorderconfig"),
    ("patch", "/api/tokens/settings/", {"enabled": False}, "tokens.change_buyorderconfig"),
    ("get", "/api/tokens/metrics/", None, "tokens.view_buyorder"),
    ("post", "/api/tokens/buy-orders/execute/", {"amount": "1"}, "tokens.add_buyorder"),
]


def client_for(*perms: str) -> APIClient:
    user = UserFactory(is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(("method", "path", "body", "perm"), ACTIONS, ids=[f"{a[0]} {a[1]}" for a in ACTIONS])
def test_staff_without_the_permission_get_403_and_with_it_get_through(method, path, body, perm):
    from tokens.models import BuyOrderConfig

    enabled = BuyOrderConfig.objects.values_list("enabled", flat=True).first()

    refused = getattr(client_for(), method)(path, body, format="json")

    assert refused.status_code == 403, refused.content
    assert refused.json()["code"] == "permission_denied"
    assert BuyOrderConfig.objects.values_list("enabled", flat=True).first() == enabled  # nothing written
    allowed = getattr(client_for(perm), method)(path, body, format="json")
    assert allowed.status_code != 403, allowed.content
