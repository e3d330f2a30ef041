"""The admin dashboard's chart: tokens bought (bars) and price per token (line) over time,
drawn on the server as an inline SVG (no JavaScript, no CDN)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 860, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 20, 50


def chart_svg(points: list[dict]) -> SafeString:
    """``points``: dicts with ``completed_at``, ``tokens_received``, ``price_per_token``, oldest first."""
    if not points:
        return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="60" role="img">'
                         '<text x="10" y="35" font-size="14">No completed buy-orders yet.</text></svg>')
    times = [p["completed_at"].timestamp() for p in points]
    tokens = [float(p["tokens_received"]) for p in points]
    prices = [float(p["price_per_token"]) for p in points]
    t0, t1 = min(times), max(times)
    span = (t1 - t0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    max_tokens = max(tokens) or 1.0
    p_lo, p_hi = min(prices), max(prices)
    if p_hi == p_lo:
        p_lo, p_hi = p_lo * 0.99, p_hi * 1.01 or 1.0
    bar_w = max(2.0, min(24.0, plot_w / (len(points) * 1.5)))

    def x(t: float) -> float:
        return LEFT + bar_w / 2 + (t - t0) / span * (plot_w - bar_w)

    def y_tokens(v: float) -> float:
        return TOP + plot_h - v / max_tokens * plot_h

    def y_price(v: float) -> float:
        return TOP + plot_h - (v - p_lo) / (p_hi - p_lo) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="Tokens bought and price per token over time" font-family="sans-serif" font-size="11">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f8f8f8" stroke="#ccc"/>']
    for i in range(5):
        frac = i / 4
        yy = TOP + plot_h - frac * plot_h
        parts.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + plot_w}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#417690">'
                     f'{max_tokens * frac:,.0f}</text>')
        parts.append(f'<text x="{LEFT + plot_w + 6}" y="{yy + 4:.1f}" fill="#c0392b">'
                     f'{p_lo + (p_hi - p_lo) * frac:.6f}</text>')
    for p, t, v in zip(points, times, tokens, strict=True):
        xx, yy = x(t), y_tokens(v)
        title = escape(f'{p["completed_at"]:%Y-%m-%d %H:%M} UTC: {p["tokens_received"]} AZR for {p["amount"]} ZAR '
                       f'at {p["price_per_token"]}')
        parts.append(f'<rect x="{xx - bar_w / 2:.1f}" y="{yy:.1f}" width="{bar_w:.1f}" '
                     f'height="{TOP + plot_h - yy:.1f}" fill="#79aec8"><title>{title}</title></rect>')
    line = " ".join(f"{x(t):.1f},{y_price(v):.1f}" for t, v in zip(times, prices, strict=True))
    parts.append(f'<polyline points="{line}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    for t, v in zip(times, prices, strict=True):
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y_price(v):.1f}" r="3" fill="#c0392b"/>')
    first, last = points[0]["completed_at"], points[-1]["completed_at"]
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 28}">{first:%Y-%m-%d %H:%M}</text>')
    parts.append(f'<text x="{LEFT + plot_w}" y="{HEIGHT - 28}" text-anchor="end">{last:%Y-%m-%d %H:%M}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" fill="#417690">■ AZR bought per order (left axis)</text>')
    parts.append(f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end" fill="#c0392b">'
                 '● price, ZAR per AZR (right axis)</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only
