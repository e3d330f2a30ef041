"""Every refusal of the tokens services carries a specific code (the API's error body shows it)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tokens.models import BuyOrderConfigChange, Revenue
from tokens.services import buy_order_config_update, buy_order_execute, exchange_rate_set, revenue_track

pytestmark = pytest.mark.django_db


def field_codes(exc: ValidationError) -> dict[str, list[str]]:
    return {field: [e.code for e in errors] for field, errors in exc.error_dict.items()}


@pytest.mark.parametrize(("changes", "codes"), [
    ({"revenue_percentage": "1.5"}, {"revenue_percentage": ["out_of_range"]}),
    ({"revenue_percentage": "0.12345"}, {"revenue_percentage": ["max_decimal_places"]}),
    ({"max_slippage": "1"}, {"max_slippage": ["out_of_range"]}),
    ({"disposition": "sell"}, {"disposition": ["invalid_choice"]}),
    ({"enabled": "yes"}, {"enabled": ["invalid_boolean"]}),
    ({"colour": "red"}, {"colour": ["unknown_setting"]}),
    ({"timezone": "Mars/Olympus"}, {"timezone": ["unknown_timezone"]}),
    ({"execution_schedule": "every day"}, {"execution_schedule": ["invalid_schedule"]}),
    ({"execution_schedule": "0 0 30 2 *"}, {"execution_schedule": ["invalid_schedule"]}),
    ({"execution_schedule": "61 * * * *"}, {"execution_schedule": ["invalid_schedule"]}),
    ({"execution_schedule": "a b c d e"}, {"execution_schedule": ["invalid_schedule"]}),
    ({"min_buy_amount": "900", "max_buy_amount": "800"}, {"min_buy_amount": ["min_above_max"]}),
])
def test_settings_refusals_have_codes(config, changes, codes):
    with pytest.raises(ValidationError) as exc:
        buy_order_config_update(**changes)
    assert field_codes(exc.value) == codes
    assert not BuyOrderConfigChange.objects.exists()


@pytest.mark.parametrize(("kwargs", "codes"), [
    ({"source": "gift", "amount": "5"}, {"source": ["unknown_source"]}),
    ({"source": "other", "amount": "5", "currency": "EURO"}, {"currency": ["invalid_currency"]}),
    ({"source": "other", "amount": "5", "currency": "GBP"}, {"currency": ["no_exchange_rate"]}),
    ({"source": "other", "amount": "5", "external_ref": "r" * 201}, {"external_ref": ["max_length"]}),
])
def test_revenue_refusals_have_codes(kwargs, codes):
    with pytest.raises(ValidationError) as exc:
        revenue_track(**kwargs)
    assert field_codes(exc.value) == codes
    assert not Revenue.objects.exists()


def test_a_reference_recorded_with_another_amount_is_a_reference_conflict():
    revenue_track(source="other", amount="5", external_ref="r-1")
    with pytest.raises(ValidationError) as exc:
        revenue_track(source="other", amount="6", external_ref="r-1")
    assert field_codes(exc.value) == {"external_ref": ["reference_conflict"]}
    assert "5.00 ZAR" in exc.value.messages[0]


def test_rate_and_price_refusals_have_codes(config):
    with pytest.raises(ValidationError) as exc:
        exchange_rate_set(currency="ZAR", rate_to_zar="1")
    assert field_codes(exc.value) == {"currency": ["base_currency"]}
    with pytest.raises(ValidationError) as exc:
        buy_order_execute(price_per_token="0.000000001")
    assert field_codes(exc.value) == {"price_per_token": ["min_value"]}
