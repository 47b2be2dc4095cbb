"""CSV cells a spreadsheet shows as text, never runs as a formula (CSV injection)."""

from __future__ import annotations

import re

#: What spreadsheet programs read as the start of a formula (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def safe_cell(value: object) -> object:
    """`value`, with a `'` in front if it is text a spreadsheet would run as a formula; a plain
    number such as `-4000.00` stays a number."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value
