"""Charts drawn on the server as inline SVG: axis ticks, a time axis, and three chart builders.

Pure: numbers, dates and labels in, SVG text out (no database, no JavaScript, no CDN). Every
chart is ``<svg class="chart" data-chart="<name>">`` and every drawn data mark (bar, point)
carries ``class="mark"`` with a ``<title>`` tooltip. Colours come from classes styled in
``backoffice/static/backoffice/admin.css``; the presentation attributes are the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

MINUTE, HOUR, DAY = 60, 3600, 86400
# Steps of a time axis, in seconds; past two weeks the axis steps by calendar months.
TIME_STEPS = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
              DAY, 2 * DAY, 7 * DAY, 14 * DAY)
MONTH_STEPS = (1, 3, 6, 12)
MONDAY_OFFSET = 4 * DAY  # 1970-01-01 was a Thursday: epoch + 4 days is a Monday


# --- Numbers -----------------------------------------------------------------------------------


def nice_step(span: float, max_ticks: int = 5) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k that cuts ``span`` into at most ``max_ticks`` parts."""
    if not span or span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, max_ticks)
    base = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * base >= raw * (1 - 1e-9):
            return mult * base
    return 10 * base  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class Axis:
    """A value axis from ``lo`` to ``hi`` (both ticks), ticks ``step`` apart."""

    lo: float
    hi: float
    step: float
    ticks: tuple[float, ...]

    def scale(self, value: float, start: float, length: float) -> float:
        """Where ``value`` falls between ``start`` (at lo) and ``start + length`` (at hi)."""
        return start + (value - self.lo) / ((self.hi - self.lo) or 1.0) * length

    def label(self, value: float) -> str:
        return tick_label(value, self.step)


def nice_axis(lo: float, hi: float, max_ticks: int = 5, *, include_zero: bool = False) -> Axis:
    """An axis with round ticks covering ``lo``..``hi``."""
    lo, hi = float(lo), float(hi)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    step = nice_step(hi - lo, max_ticks)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = tuple(_clean(i * step) for i in range(first, last + 1))
    return Axis(lo=ticks[0], hi=ticks[-1], step=step, ticks=ticks)


def padded_axis(values: Sequence[float], *, min_relative: float = 0.01, max_ticks: int = 5) -> Axis:
    """An axis around ``values`` that spans at least ± ``min_relative`` of their middle, so a
    price that moved by 0.00002 does not fill the chart from 0.50151 to 0.50153."""
    lo, hi = float(min(values)), float(max(values))
    mid = (lo + hi) / 2
    half = max((hi - lo) / 2 * 1.15, abs(mid) * min_relative, 1e-9)
    return nice_axis(mid - half, mid + half, max_ticks)


def _clean(value: float) -> float:
    return float(f"{value:.12g}")


def decimals_for(step: float) -> int:
    """How many decimals tell ticks ``step`` apart: 0.002 → 3, 2.5 → 1, 500 → 0."""
    if step <= 0:
        return 0
    places = max(0, -math.floor(math.log10(step) + 1e-12))
    while places < 12 and abs(step * 10 ** places - round(step * 10 ** places)) > 1e-6:
        places += 1
    return places


def tick_label(value: float, step: float) -> str:
    """A tick's text with as few digits as its step needs; thousands as k, millions as M."""
    if abs(value) < step / 1e6:
        return "0"
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if step >= divisor / 2 and abs(value) >= divisor:
            return f"{value / divisor:,.{decimals_for(step / divisor)}f}{suffix}"
    return f"{value:,.{decimals_for(step)}f}"


# --- Time --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeAxis:
    start: float  # epoch seconds
    end: float
    step: int  # seconds (months: 30 days per month, for bucketing only)
    ticks: tuple[tuple[float, str], ...]

    def scale(self, ts: float, x0: float, width: float) -> float:
        return x0 + (ts - self.start) / ((self.end - self.start) or 1.0) * width


def time_step(span_seconds: float, max_ticks: int = 6) -> int:
    """The smallest step of TIME_STEPS (then months) giving at most ``max_ticks`` intervals."""
    for step in TIME_STEPS:
        if span_seconds / step <= max_ticks:
            return step
    for months in MONTH_STEPS:
        if span_seconds / (months * 30 * DAY) <= max_ticks:
            return months * 30 * DAY
    years = math.ceil(span_seconds / (365 * DAY) / max_ticks)
    return years * 12 * 30 * DAY


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def time_ticks(start: float, end: float, max_ticks: int = 6) -> tuple[int, list[tuple[float, str]]]:
    """Round ticks between two epoch times with labels: clock times under a day (the date at
    midnight), "Mar 05" for days and weeks (weeks start on Mondays), "Mar 2026" for months."""
    step = time_step(end - start, max_ticks)
    ticks: list[tuple[float, str]] = []
    if step < 28 * DAY:
        offset = MONDAY_OFFSET if step >= 7 * DAY else 0
        ts = math.ceil((start - offset) / step) * step + offset
        while ts <= end + 1e-6:
            moment = _utc(ts)
            if step < DAY and (moment.hour or moment.minute):
                text = moment.strftime("%H:%M")
            else:
                text = moment.strftime("%b %d")
            ticks.append((ts, text))
            ts += step
        return step, ticks
    months = max(1, round(step / (30 * DAY)))
    first = _utc(start)
    index = first.year * 12 + first.month - 1
    index = -(-index // months) * months  # round up to a multiple of the step
    while True:
        moment = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        if moment.timestamp() < start:
            index += months
            continue
        if moment.timestamp() > end:
            break
        ticks.append((moment.timestamp(), moment.strftime("%b %Y")))
        index += months
    return step, ticks


def time_axis(times: Sequence[float], max_ticks: int = 6, *, min_span: float = HOUR) -> TimeAxis:
    """A time axis for epoch ``times``: padded by a twentieth of the span (at least ``min_span``
    wide, centred on the values), with round labelled ticks."""
    lo, hi = min(times), max(times)
    span = max(hi - lo, min_span)
    pad = span / 20
    mid = (lo + hi) / 2
    start, end = min(lo, mid - span / 2) - pad, max(hi, mid + span / 2) + pad
    step, ticks = time_ticks(start, end, max_ticks)
    return TimeAxis(start=start, end=end, step=step, ticks=tuple(ticks))


@dataclass(frozen=True)
class Bucket:
    start: float  # epoch seconds of the first order in it
    end: float  # of the last
    count: int
    tokens: Decimal
    amount: Decimal

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2

    @property
    def price(self) -> Decimal:
        """Volume-weighted: the ZAR spent over the tokens bought."""
        return self.amount / self.tokens if self.tokens else Decimal(0)


def bucket_orders(points: Sequence[dict], max_buckets: int = 48) -> tuple[int, list[Bucket]]:
    """Orders close in time merged into one bucket (a time step that gives at most
    ``max_buckets`` over the span), so orders seconds apart draw as one readable mark."""
    if not points:
        return MINUTE, []
    times = [p["completed_at"].timestamp() for p in points]
    size = time_step(max(times) - min(times), max_buckets)
    groups: dict[int, list[tuple[float, dict]]] = {}
    for ts, point in zip(times, points, strict=True):
        groups.setdefault(int(ts // size), []).append((ts, point))
    buckets = []
    for key in sorted(groups):
        rows = groups[key]
        buckets.append(Bucket(start=rows[0][0], end=rows[-1][0], count=len(rows),
                              tokens=sum((Decimal(p["tokens_received"]) for _, p in rows), Decimal(0)),
                              amount=sum((Decimal(p["amount"]) for _, p in rows), Decimal(0))))
    return size, buckets


# --- SVG ---------------------------------------------------------------------------------------


def _svg_open(name: str, width: int, height: int, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(name)}" '
            f'viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(label)}" '
            f'font-family="system-ui, sans-serif" font-size="11" preserveAspectRatio="xMidYMid meet">')


def empty_chart(name: str, message: str, width: int = 640) -> SafeString:
    return mark_safe(_svg_open(name, width, 60, message)  # noqa: S308 - escaped text only
                     + f'<text x="{width / 2}" y="34" text-anchor="middle" class="empty" fill="#6b7280">'
                     f'{escape(message)}</text></svg>')


def _value_gridlines(axis: Axis, left: float, right: float, top: float, height: float,
                     side: str = "left", css: str = "axis") -> list[str]:
    parts = []
    for tick in axis.ticks:
        y = top + height - axis.scale(tick, 0, height)
        if side == "left":
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid" '
                         f'stroke="#e5e7eb"/>')
            parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="{css}" '
                         f'fill="#6b7280">{axis.label(tick)}</text>')
        else:
            parts.append(f'<text x="{right + 6}" y="{y + 4:.1f}" class="{css}" fill="#6b7280">'
                         f'{axis.label(tick)}</text>')
    return parts


def daily_bars(name: str, days: Sequence[date], values: Sequence[float | Decimal], *,
               titles: Sequence[str] | None = None, unit: str = "", width: int = 640,
               height: int = 240) -> SafeString:
    """One bar per day, a labelled value axis from 0, and a date axis with a tick per day and a
    label per week (each Monday; every day when there are few)."""
    if not days:
        return empty_chart(name, "No data yet.", width)
    left, right, top, bottom = 52, 12, 26, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    numbers = [float(v or 0) for v in values]
    axis = nice_axis(0, max(numbers) or 1, 4, include_zero=True)
    slot = plot_w / len(days)
    bar_w = max(2.0, slot * 0.72)
    parts = [_svg_open(name, width, height, f"{name} per day")]
    parts += _value_gridlines(axis, left, left + plot_w, top, plot_h)
    if unit:
        parts.append(f'<text x="{left - 6}" y="{top - 14}" text-anchor="end" class="axis unit" '
                     f'fill="#6b7280">{escape(unit)}</text>')
    base = top + plot_h
    every_day = len(days) <= 10
    for i, (day, value) in enumerate(zip(days, numbers, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        h = axis.scale(value, 0, plot_h) if value else 0
        title = titles[i] if titles else f"{day:%a %b %d}: {value:,.2f}"
        parts.append(f'<rect class="mark" x="{x:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                     f'fill="#2563eb" rx="1.5"><title>{escape(title)}</title></rect>')
        centre = left + i * slot + slot / 2
        labelled = every_day or day.weekday() == 0
        parts.append(f'<line x1="{centre:.1f}" y1="{base}" x2="{centre:.1f}" y2="{base + (5 if labelled else 3)}" '
                     f'stroke="#9ca3af"/>')
        if labelled:
            parts.append(f'<text x="{centre:.1f}" y="{base + 17}" text-anchor="middle" class="axis tick" '
                         f'fill="#4b5563">{day:%b %d}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#9ca3af"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def horizontal_bars(name: str, rows: Sequence[tuple[str, int | float]], *, width: int = 640,
                    row_height: int = 26) -> SafeString:
    """One labelled bar per row (e.g. members per rank), the value written at its end."""
    if not rows:
        return empty_chart(name, "No data yet.", width)
    left, right, top = 130, 56, 8
    plot_w = width - left - right
    height = top * 2 + row_height * len(rows)
    axis = nice_axis(0, max(float(v) for _, v in rows) or 1, 4, include_zero=True)
    parts = [_svg_open(name, width, height, f"{name}: one bar per row")]
    for i, (label, value) in enumerate(rows):
        y = top + i * row_height
        w = axis.scale(float(value), 0, plot_w)
        text = escape(label if len(label) <= 20 else label[:19] + "…")
        parts.append(f'<text x="{left - 8}" y="{y + row_height / 2 + 4:.1f}" text-anchor="end" class="axis" '
                     f'fill="#374151">{text}</text>')
        parts.append(f'<rect class="mark" x="{left}" y="{y + 4}" width="{max(w, 1.5):.1f}" '
                     f'height="{row_height - 8}" fill="#0d9488" rx="2"><title>{escape(label)}: {value:,}</title>'
                     f'</rect>')
        parts.append(f'<text x="{left + max(w, 1.5) + 6:.1f}" y="{y + row_height / 2 + 4:.1f}" class="value" '
                     f'fill="#111827">{value:,}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def buyback_chart(points: Sequence[dict], *, width: int = 860, height: int = 300,
                  name: str = "buybacks") -> SafeString:
    """Tokens bought (bars, left axis) and the price paid (line, right axis) on a real time axis.

    ``points``: dicts with ``completed_at``, ``tokens_received``, ``price_per_token``, ``amount``.
    Orders close in time are merged per bucket (tokens summed, price weighted by volume); the
    price axis spans at least ±1% around the prices so that tiny moves do not look like cliffs.
    """
    if not points:
        return empty_chart(name, "No completed buy-orders yet.", width)
    size, buckets = bucket_orders(points)
    axis_t = time_axis([b.middle for b in buckets], min_span=max(HOUR, size * 4))
    left, right, top, bottom = 60, 66, 28, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    tokens_axis = nice_axis(0, float(max(b.tokens for b in buckets)), 4, include_zero=True)
    price_axis = padded_axis([float(b.price) for b in buckets])
    base = top + plot_h
    parts = [_svg_open(name, width, height, "AZR bought and price per AZR over time")]
    parts += _value_gridlines(tokens_axis, left, left + plot_w, top, plot_h, css="axis tokens")
    parts += _value_gridlines(price_axis, left, left + plot_w, top, plot_h, side="right", css="axis price")
    parts.append(f'<text x="{left - 6}" y="{top - 14}" text-anchor="end" class="axis unit" fill="#2563eb">AZR</text>')
    parts.append(f'<text x="{left + plot_w + 6}" y="{top - 14}" class="axis unit" fill="#b45309">ZAR/AZR</text>')
    for ts, text in axis_t.ticks:
        x = axis_t.scale(ts, left, plot_w)
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 5}" stroke="#9ca3af"/>')
        parts.append(f'<text x="{x:.1f}" y="{base + 18}" text-anchor="middle" class="axis tick" '
                     f'fill="#4b5563">{escape(text)}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#9ca3af"/>')
    slot = plot_w * size / ((axis_t.end - axis_t.start) or 1)
    bar_w = max(3.0, min(22.0, slot * 0.7))
    line, bars, dots = [], [], []
    for bucket in buckets:
        x = axis_t.scale(bucket.middle, left, plot_w)
        h = tokens_axis.scale(float(bucket.tokens), 0, plot_h)
        y_price = base - price_axis.scale(float(bucket.price), 0, plot_h)
        line.append(f"{x:.1f},{y_price:.1f}")
        when = _utc(bucket.start).strftime("%Y-%m-%d %H:%M")
        if bucket.end - bucket.start >= MINUTE:
            when += _utc(bucket.end).strftime("–%H:%M")
        orders = "1 order" if bucket.count == 1 else f"{bucket.count} orders"
        title = escape(f"{when} UTC, {orders}: {bucket.tokens:,.4f} AZR for {bucket.amount:,.2f} ZAR, "
                       f"{bucket.price:,.6f} ZAR/AZR")
        bars.append(f'<rect class="mark tokens" x="{x - bar_w / 2:.1f}" y="{base - h:.1f}" width="{bar_w:.1f}" '
                     f'height="{h:.1f}" fill="#93c5fd" rx="1.5"><title>{title}</title></rect>')
        dots.append(f'<circle class="mark price" cx="{x:.1f}" cy="{y_price:.1f}" r="3.5" fill="#b45309">'
                     f'<title>{title}</title></circle>')
    parts += bars
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#b45309" stroke-width="2" '
                     'class="line"/>')
    parts += dots
    first, last = _utc(axis_t.start), _utc(axis_t.end)
    span_text = f"{first:%Y-%m-%d}" if first.date() == last.date() else f"{first:%Y-%m-%d} → {last:%Y-%m-%d}"
    merged = "" if all(b.count == 1 for b in buckets) else f" · orders within {_duration(size)} merged"
    parts.append(f'<text x="{left}" y="{height - 8}" class="legend" fill="#2563eb">■ AZR bought (left)</text>')
    parts.append(f'<text x="{left + 130}" y="{height - 8}" class="legend" fill="#b45309">● price paid, '
                 f'ZAR per AZR (right)</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" class="legend" fill="#6b7280">'
                 f'UTC, {span_text}{merged}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def _duration(seconds: int) -> str:
    if seconds >= 28 * DAY:
        months = round(seconds / (30 * DAY))
        return "a month" if months == 1 else f"{months} months"
    if seconds >= DAY:
        return "a day" if seconds == DAY else f"{seconds // DAY} days"
    if seconds >= HOUR:
        return "an hour" if seconds == HOUR else f"{seconds // HOUR} hours"
    return "a minute" if seconds == MINUTE else f"{seconds // MINUTE} minutes"


def last_days(today: date, count: int = 30) -> list[date]:
    """The ``count`` days ending with ``today``, oldest first."""
    return [today - timedelta(days=count - 1 - i) for i in range(count)]
