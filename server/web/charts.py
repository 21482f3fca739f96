"""The adoption dashboard's charts, drawn on the server as SVG: no script, no CDN, nothing the CSP
forbids (presentation attributes only, no inline style). Every number is also in a table beside it."""

from __future__ import annotations

from markupsafe import Markup, escape

from .texts import translate

# Login methods and their colours (colour-blind safe: blue, orange, grey).
SERIES = (("passkey", "#0b5cad"), ("email_code", "#d4731b"), ("trusted_device", "#8a94a6"))
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 40, 24, 10


def _nice_top(value: int) -> int:
    """The axis' top: the smallest 1, 2 or 5 times a power of ten that is at least `value`."""
    scale = 1
    while True:
        for factor in (1, 2, 5):
            if factor * scale >= value:
                return factor * scale
        scale *= 10


def stacked_days(by_day: dict[str, dict[str, int]], lang: str) -> Markup:
    """Logins per JST day, stacked by method."""
    days = sorted(by_day)
    totals = [sum(by_day[d].values()) for d in days]
    top = _nice_top(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(days), 1)
    bar = max(step - 1, 1)
    title = escape(translate("console.chart_logins", lang))
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-logins-title" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="chart-logins-title">{title}</title>']
    for value in sorted({0, top // 2, top}):  # whole numbers only: a top of 1 has no middle line
        y = TOP + plot_h * (1 - value / top)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d5dae3"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6475">'
                     f'{value}</text>')
    for i, day in enumerate(days):
        x = LEFT + i * step
        y = TOP + plot_h
        for method, colour in SERIES:
            count = by_day[day].get(method, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                         f'<title>{escape(day)} {escape(translate("method." + method, lang))}: {count}</title></rect>')
        if i % 15 == 0 or i == len(days) - 1:
            last = i == len(days) - 1  # the last label ends at its bar, inside the picture
            anchor = f'x="{x + bar:.1f}" text-anchor="end"' if last else f'x="{x:.1f}"'
            parts.append(f'<text {anchor} y="{HEIGHT - 6}" font-size="11" fill="#5b6475">{escape(day[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def share(numbers: dict, lang: str) -> Markup:
    """Active customers (30 days) with and without a passkey, as one bar."""
    have, lack = numbers["active_30d_with_passkey"], numbers["active_30d_without_passkey"]
    total = max(have + lack, 1)
    w = WIDTH - 16
    have_w = w * have / total
    title = escape(translate("console.chart_share", lang))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} 48" role="img" aria-labelledby="chart-share-title" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="chart-share-title">{title}</title>'
        f'<rect x="8" y="8" width="{have_w:.1f}" height="28" fill="#0b5cad"/>'
        f'<rect x="{8 + have_w:.1f}" y="8" width="{w - have_w:.1f}" height="28" fill="#d4731b"/>'
        f'<text x="16" y="27" font-size="13" fill="#fff">{have}</text>'
        f'<text x="{WIDTH - 16}" y="27" font-size="13" fill="#fff" text-anchor="end">{lack}</text></svg>')
