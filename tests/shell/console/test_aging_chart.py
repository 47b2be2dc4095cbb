"""The ageing chart and the sign-in limiter, without a browser."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from app.shell.console import aging_chart
from app.shell.console.auth import SignInLimiter

amounts = st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False)
buckets = st.fixed_dictionaries({b: amounts for b in aging_chart.BUCKETS})


@given(st.dictionaries(st.sampled_from(["LKR", "USD", "JPY"]), buckets, max_size=3))
def test_each_bar_is_as_long_as_its_share_of_its_currencys_largest(
    outstanding: dict[str, dict[str, Decimal]],
) -> None:
    svg = str(aging_chart.render(outstanding))
    shown = [c for c, b in outstanding.items() if any(b.values())]
    if not shown:
        assert "No outstanding receivables" in svg
        return
    widths = [int(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="(\d+)"', svg)]
    assert len(widths) == 4 * len(shown)
    for index, code in enumerate(sorted(shown)):
        largest = max(outstanding[code].values())
        for offset, name in enumerate(aging_chart.BUCKETS):
            amount = outstanding[code][name]
            expected = int(420 * amount / largest) if amount > 0 else 0
            assert widths[4 * index + offset] == max(expected, 1)


def test_amounts_keep_the_currencys_decimals_and_names_are_escaped() -> None:
    svg = str(aging_chart.render({
        "JPY": {"0-30": Decimal("1500")}, "KWD": {"90+": Decimal("12.345")},
        "<b>": {"0-30": Decimal(0)}, "XYZ": {"0-30": Decimal("1.5")},
    }))  # fmt: skip
    assert "1,500</text>" in svg and "12.345</text>" in svg and "1.50</text>" in svg
    assert "<b>" not in svg
    assert 'aria-label="Outstanding receivables by age. JPY: 0-30 days 1,500' in svg


def test_the_limiter_allows_five_wrong_keys_per_window_and_forgets_them() -> None:
    limiter = SignInLimiter(allowed=5, window=300)
    for second in range(5):
        assert limiter.retry_after("10.0.0.1", now=second) == 0
        limiter.failed("10.0.0.1", now=second)
    assert limiter.retry_after("10.0.0.1", now=10) == 290
    assert limiter.retry_after("10.0.0.2", now=10) == 0  # another address is not affected
    assert limiter.retry_after("10.0.0.1", now=300.5) == 0  # the first failure left the window
    limiter.failed("10.0.0.1", now=301)
    assert limiter.retry_after("10.0.0.1", now=302) == 0
    limiter.succeeded("10.0.0.1")
    assert limiter.retry_after("10.0.0.1", now=302) == 0


def test_ages_read_in_their_two_largest_units() -> None:
    from datetime import UTC, datetime, timedelta

    from app.shell.console.web import templates

    age = templates.filters["age"]
    now = datetime.now(UTC)
    assert age(now - timedelta(days=3, hours=4, minutes=5)) == "3 d 4 h"
    assert age(now - timedelta(hours=2, minutes=5, seconds=1)).startswith("2 h 5 min")
    assert age(now + timedelta(minutes=1)) == "0 s"  # a clock a little ahead is not negative
    assert age(None) == "–"
