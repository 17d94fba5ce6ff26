"""Small SVG charts drawn in Python, for pages that must work offline (no scripts, no CDN).

Each function returns one self-contained ``<svg>`` element (with its ``xmlns``), so the same
string goes inline into an HTML page and into a standalone ``.svg`` file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#64748b")
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 150, 36, 44


def _text(
    x: float, y: float, body: str, size: int = 12, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{html.escape(body)}</text>"
    )


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img" aria-label="{html.escape(title)}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(12, 22, title, 15, font_weight="600", fill="#1f2933"),
    ]


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _y_axis(parts: list[str], top: float, box: tuple[float, float, float, float]) -> None:
    x0, x1, y0, y1 = box
    for i in range(5):
        value = top * i / 4
        y = y0 - (y0 - y1) * i / 4
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        label = f"{value:,.0f}" if top >= 10 else f"{value:.2g}"
        parts.append(_text(x0 - 6, y + 4, label, 11, "end", fill="#52606d"))


def _x_labels(parts: list[str], labels: Sequence[str], xs: Sequence[float], y: float) -> None:
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(_text(xs[i], y, labels[i], 11, "middle", fill="#52606d"))


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    width: int = 960,
    height: int = 320,
) -> str:
    """Lines over a shared x axis, a legend on the right; y from 0 to a round maximum."""
    parts = _open(width, height, title)
    x0, x1 = _PAD_L, width - _PAD_R
    y0, y1 = height - _PAD_B, _PAD_T
    known = [v for _, values in series for v in values if v is not None]
    top = nice_max(max(known, default=0.0))
    n = max(len(x_labels), 1)
    xs = [x0 + (x1 - x0) * i / max(n - 1, 1) for i in range(n)]
    _y_axis(parts, top, (x0, x1, y0, y1))
    _x_labels(parts, x_labels, xs, y0 + 18)
    for index, (name, values) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        points = " ".join(
            f"{xs[i]:.1f},{y0 - (y0 - y1) * v / top:.1f}"
            for i, v in enumerate(values[:n])
            if v is not None
        )
        if points:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        ly = y1 + 8 + 20 * index
        parts.append(f'<rect x="{x1 + 16}" y="{ly}" width="12" height="12" fill="{color}"/>')
        last = f" {values[-1]:,.0f}" if values and values[-1] is not None else ""
        parts.append(_text(x1 + 34, ly + 10, f"{name}{last}", 12, fill="#1f2933"))
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, width: int = 960, height: int = 260
) -> str:
    """Vertical bars with their values on top."""
    parts = _open(width, height, title)
    x0, x1 = _PAD_L, width - 40
    y0, y1 = height - _PAD_B, _PAD_T + 16
    top = nice_max(max((v for _, v in bars), default=0.0))
    _y_axis(parts, top, (x0, x1, y0, y1))
    slot = (x1 - x0) / max(len(bars), 1)
    for index, (name, value) in enumerate(bars):
        h = (y0 - y1) * value / top
        x = x0 + slot * index + slot * 0.2
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.1f}" y="{y0 - h:.1f}" width="{slot * 0.6:.1f}" height="{h:.1f}" '
            f'fill="{color}"/>'
        )
        parts.append(_text(x + slot * 0.3, y0 - h - 6, f"{value:,.0f}", 12, "middle"))
        parts.append(_text(x + slot * 0.3, y0 + 18, name, 12, "middle", fill="#52606d"))
    parts.append("</svg>")
    return "\n".join(parts)


def _cell_color(share: float) -> str:
    """White to blue by share (0..1)."""
    share = min(max(share, 0.0), 1.0) ** 0.6  # lift the low shares, where most retention lives
    r, g, b = (round(255 + (t - 255) * share) for t in (37, 99, 235))
    return f"rgb({r},{g},{b})"


def heatmap(
    title: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cells: Sequence[Sequence[float | None]],
    *,
    cell_w: int = 26,
    cell_h: int = 16,
    label_w: int = 150,
    annotate: bool = False,
) -> str:
    """A grid of shares (0..1, None = not known yet), rows labelled on the left."""
    width = label_w + cell_w * len(col_labels) + 20
    height = _PAD_T + 22 + cell_h * len(row_labels) + 16
    parts = _open(width, height, title)
    top = _PAD_T + 18
    step = max(1, len(col_labels) // 15)
    for j, label in enumerate(col_labels):
        if j % step == 0:
            parts.append(_text(label_w + cell_w * (j + 0.5), top - 4, label, 10, "middle"))
    for i, label in enumerate(row_labels):
        y = top + cell_h * i
        parts.append(_text(label_w - 6, y + cell_h - 4, label, 10, "end", fill="#1f2933"))
        for j, share in enumerate(cells[i]):
            if share is None:
                continue
            x = label_w + cell_w * j
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                f'fill="{_cell_color(share)}"><title>{label} {col_labels[j]}: '
                f"{100 * share:.1f}%</title></rect>"
            )
            if annotate:
                ink = "#ffffff" if share > 0.35 else "#1f2933"
                parts.append(
                    _text(
                        x + cell_w / 2, y + cell_h - 4, f"{100 * share:.0f}", 9, "middle", fill=ink
                    )
                )
    parts.append("</svg>")
    return "\n".join(parts)
