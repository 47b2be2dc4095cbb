"""The ageing of outstanding receivables as SVG, drawn on the server: no script, no library.

One row of bars per currency (amounts in different currencies are never added up), one bar per
bucket, each as long as its share of that currency's largest bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from html import escape

from markupsafe import Markup

from app.platform.currency import is_known, minor_units

BUCKETS = ("0-30", "31-60", "61-90", "90+")
_COLOURS = {"0-30": "#2f81f7", "31-60": "#bf8700", "61-90": "#db6d28", "90+": "#cf222e"}
_LABEL, _BAR, _ROW, _WIDTH = 70, 420, 26, 760


def render(outstanding: Mapping[str, Mapping[str, Decimal]]) -> Markup:
    """`outstanding[currency][bucket]` → one SVG; an empty mapping draws a sentence instead."""
    currencies = sorted(c for c, buckets in outstanding.items() if any(buckets.values()))
    if not currencies:
        return Markup('<p class="muted">No outstanding receivables.</p>')
    rows: list[str] = []
    y = 20
    for code in currencies:
        buckets = outstanding[code]
        largest = max(buckets.get(b, Decimal(0)) for b in BUCKETS) or Decimal(1)
        places = _places(code)
        rows.append(f'<text x="0" y="{y}" font-weight="600">{escape(code)}</text>')
        y += 8
        for name in BUCKETS:
            amount = buckets.get(name, Decimal(0))
            length = int(_BAR * amount / largest) if amount > 0 else 0
            rows.append(
                f'<text x="0" y="{y + 15}">{name} d</text>'
                f'<rect x="{_LABEL}" y="{y + 3}" width="{max(length, 1)}" height="16" '
                f'fill="{_COLOURS[name]}"><title>{escape(code)} {name} days: '
                f"{amount:,.{places}f}</title></rect>"
                f'<text x="{_LABEL + max(length, 1) + 8}" y="{y + 15}">{amount:,.{places}f}</text>'
            )
            y += _ROW
        y += 16
    summary = "; ".join(
        f"{code}: "
        + ", ".join(
            f"{b} days {outstanding[code].get(b, Decimal(0)):,.{_places(code)}f}" for b in BUCKETS
        )
        for code in currencies
    )
    # every value inside is a number or passed through escape()
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_WIDTH}" height="{y}" '
        f'viewBox="0 0 {_WIDTH} {y}" aria-label="Outstanding receivables by age. '
        f'{escape(summary)}">{"".join(rows)}</svg>'
    )


def _places(code: str) -> int:
    """The currency's decimals; a code no longer in the list shows two."""
    return minor_units(code) if is_known(code) else 2
