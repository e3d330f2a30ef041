"""The chart module's axes and builders (pure: no database)."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from backoffice import charts


@pytest.mark.parametrize(("span", "ticks", "step"), [
    (10, 5, 2), (100, 5, 20), (7, 5, 2), (1, 4, 0.25), (0.0125, 5, 0.0025), (15_000, 4, 5000), (3, 6, 0.5)])
def test_nice_step_is_1_2_2_5_or_5_times_a_power_of_ten(span, ticks, step):
    assert charts.nice_step(span, ticks) == pytest.approx(step)


def test_nice_axis_covers_the_values_with_round_ticks_from_zero():
    axis = charts.nice_axis(0, 8734.5, 4, include_zero=True)
    assert axis.ticks == (0, 2500, 5000, 7500, 10000)
    assert [axis.label(t) for t in axis.ticks] == ["0", "2.5k", "5.0k", "7.5k", "10.0k"]
    assert charts.nice_axis(0, 0, include_zero=True).ticks[-1] > 0  # nothing yet: still an axis


def test_price_axis_spans_at_least_one_percent_and_few_digits():
    axis = charts.padded_axis([0.50151, 0.50153])
    assert axis.lo <= 0.50151 * 0.99 + 1e-9 and axis.hi >= 0.50153 * 1.01 - 1e-9
    assert axis.hi - axis.lo < 0.05  # still zoomed on the prices, not from 0
    labels = [axis.label(t) for t in axis.ticks]
    assert 3 <= len(labels) <= 7 and all(len(text) <= 6 for text in labels), labels
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(("step", "places"), [(0.002, 3), (2.5, 1), (500, 0), (0.25, 2), (1, 0)])
def test_decimals_tell_ticks_apart(step, places):
    assert charts.decimals_for(step) == places


def test_tick_labels_use_thousands_and_millions():
    assert charts.tick_label(1_500_000, 500_000) == "1.5M"
    assert charts.tick_label(20_000, 10_000) == "20k"
    assert charts.tick_label(750, 250) == "750"
    assert charts.tick_label(1000, 250) == "1,000"  # not "1.00k"
    assert charts.tick_label(1e-12, 0.5) == "0"


def _ts(*args):
    return datetime(*args, tzinfo=UTC).timestamp()


def test_time_ticks_within_a_day_are_clock_times_and_the_date_at_midnight():
    step, ticks = charts.time_ticks(_ts(2026, 3, 4, 20, 10), _ts(2026, 3, 5, 4, 0))
    assert step == 3 * charts.HOUR
    assert [text for _, text in ticks] == ["21:00", "Mar 05", "03:00"]


def test_time_ticks_over_weeks_fall_on_mondays_and_over_a_year_on_months():
    step, ticks = charts.time_ticks(_ts(2026, 1, 1), _ts(2026, 2, 20))
    assert step == 14 * charts.DAY
    assert all(datetime.fromtimestamp(ts, UTC).weekday() == 0 for ts, _ in ticks) and len(ticks) >= 3
    _, monthly = charts.time_ticks(_ts(2025, 1, 10), _ts(2026, 1, 10))
    assert [text for _, text in monthly] == ["Apr 2025", "Jul 2025", "Oct 2025", "Jan 2026"]


def test_time_axis_of_one_moment_is_centred_and_labelled():
    moment = _ts(2026, 3, 4, 12, 0)
    axis = charts.time_axis([moment])
    assert axis.start < moment < axis.end and len(axis.ticks) >= 2
    assert 0.45 < (moment - axis.start) / (axis.end - axis.start) < 0.55


def _order(at, tokens, amount):
    return {"completed_at": at, "tokens_received": Decimal(tokens), "amount": Decimal(amount),
            "price_per_token": Decimal(amount) / Decimal(tokens)}


def test_orders_seconds_apart_are_merged_with_a_volume_weighted_price():
    start = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    points = [_order(start + timedelta(seconds=s), 1000, amount) for s, amount in ((0, 500), (4, 510), (9, 520))]
    points.append(_order(start + timedelta(days=3), 2000, 1000))
    size, buckets = charts.bucket_orders(points)
    assert [b.count for b in buckets] == [3, 1]
    assert buckets[0].tokens == 3000 and buckets[0].price == Decimal(1530) / Decimal(3000)
    svg = charts.buyback_chart(points)
    assert svg.count('class="mark tokens"') == 2 and svg.count('class="mark price"') == 2
    assert 'data-chart="buybacks"' in svg and "3 orders" in svg and "merged" in svg


def test_buyback_chart_labels_its_time_axis_and_its_price_axis():
    start = datetime(2026, 3, 1, tzinfo=UTC)
    points = [_order(start + timedelta(days=d), 1000, 501.51 + d * 0.001) for d in range(10)]
    svg = str(charts.buyback_chart(points))
    assert svg.count('class="axis tick"') >= 4  # several dates, not just the two ends
    prices = re.findall(r'class="axis price"[^>]*>([^<]+)<', svg)
    assert 3 <= len(prices) <= 7 and all(len(text) <= 6 for text in prices), prices  # 0.495, 0.500, …
    assert "ZAR/AZR" in svg
    assert "<polyline" in svg


def test_daily_bars_label_weeks_and_escape_titles():
    days = charts.last_days(date(2026, 3, 30), 30)
    assert days[0] == date(2026, 3, 1) and days[-1] == date(2026, 3, 30) and len(days) == 30
    svg = str(charts.daily_bars("sales", days, [i * 10 for i in range(30)], titles=["<b>x</b>"] * 30, unit="USD"))
    assert svg.count('class="mark"') == 30 and 'data-chart="sales"' in svg
    assert svg.count('class="axis tick"') == sum(1 for d in days if d.weekday() == 0)
    assert "<b>x</b>" not in svg and "&lt;b&gt;" in svg


def test_horizontal_bars_and_empty_charts():
    svg = str(charts.horizontal_bars("ranks", [("No rank", 40), ("<Gold>", 3)]))
    assert svg.count('class="mark"') == 2 and "&lt;Gold&gt;" in svg and ">40<" in svg
    assert "No completed buy-orders yet." in charts.buyback_chart([])
    assert 'data-chart="ranks"' in charts.horizontal_bars("ranks", [])
