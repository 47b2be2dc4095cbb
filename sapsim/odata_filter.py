"""OData V2 ``$filter`` parsing and evaluation over rows of typed Python values.

Grammar: ``or`` < ``and`` < ``not`` < comparison (``eq ne gt ge lt le``) < primary, where a
primary is a property, a literal, a parenthesised expression or one of ``substringof``,
``startswith``, ``endswith``, ``tolower``, ``toupper``. Literals: ``'text'`` (``''`` escapes a
quote), ``datetime'2024-03-15T00:00:00'``, ``datetimeoffset'...'``, ``time'PT10H30M'``,
``guid'...'``, ``true``/``false``, ``null``, numbers (optional ``M``/``L``/``d``/``f`` suffix).
Row values: ``str``, ``bool``, ``Decimal``, ``datetime`` (naive UTC), ``time`` or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

Row = dict[str, Any]
Getter = Callable[[Row], Any]

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<typed>(?:datetimeoffset|datetime|time|guid|binary|X)'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMlLdDfF]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_DURATION_RE = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?")


class FilterError(Exception):
    """Malformed expression; ``position`` is the character offset where parsing stopped."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class UnknownProperty(FilterError):
    """The expression names a property the entity type does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Property '{name}' not found")
        self.name = name


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Expr:
    """A typed expression: ``edm`` is the EDM type (``None`` for ``null``)."""

    edm: str | None
    get: Getter


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise FilterError(f"Invalid token detected at position {pos}", pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def parse_filter(
    text: str, property_types: Mapping[str, str], defaults: Mapping[str, Any] | None = None
) -> Callable[[Row], bool]:
    """Compile ``$filter`` text into a row predicate; raises ``FilterError``.

    ``defaults`` supplies the value of a property a row does not carry (sparse rows).
    """
    parser = _Parser(tokenize(text), property_types, defaults or {})
    expr = parser.or_expr()
    if parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        raise FilterError(f"Invalid token detected at position {token.pos}", token.pos)
    if expr.edm != "Edm.Boolean":
        raise FilterError("The filter expression is not a Boolean expression")
    return lambda row: expr.get(row) is True


class _Parser:
    def __init__(
        self, tokens: list[Token], types: Mapping[str, str], defaults: Mapping[str, Any]
    ) -> None:
        self.tokens = tokens
        self.index = 0
        self.types = types
        self.defaults = defaults

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError("Unexpected end of filter expression")
        self.index += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text in words:
            self.index += 1
            return token.text
        return None

    def expect(self, text: str) -> None:
        token = self.next()
        if token.text != text:
            raise FilterError(f"Expected '{text}' at position {token.pos}", token.pos)

    def or_expr(self) -> Expr:
        left = self.and_expr()
        while self.keyword("or"):
            left = _logical(left, self.and_expr(), any)
        return left

    def and_expr(self) -> Expr:
        left = self.not_expr()
        while self.keyword("and"):
            left = _logical(left, self.not_expr(), all)
        return left

    def not_expr(self) -> Expr:
        if self.keyword("not"):
            inner = self.not_expr()
            _require_bool(inner)
            return Expr("Edm.Boolean", lambda row: not inner.get(row))
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.primary()
        operator = self.keyword(*_COMPARISONS)
        if operator is None:
            return left
        return _compare(operator, left, self.primary())

    def primary(self) -> Expr:
        token = self.next()
        if token.text == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if token.kind == "name":
            return self.name(token)
        if token.kind in {"string", "typed", "number"}:
            return _literal(token)
        raise FilterError(f"Invalid token detected at position {token.pos}", token.pos)

    def name(self, token: Token) -> Expr:
        word = token.text
        if word in {"true", "false"}:
            value = word == "true"
            return Expr("Edm.Boolean", lambda row: value)
        if word == "null":
            return Expr(None, lambda row: None)
        nxt = self.peek()
        if nxt is not None and nxt.text == "(" and word in _FUNCTIONS:
            self.next()
            args = [self.or_expr()]
            while self.next().text == ",":
                args.append(self.or_expr())
            self.index -= 1
            self.expect(")")
            return _FUNCTIONS[word](args)
        edm = self.types.get(word)
        if edm is None:
            raise UnknownProperty(word)
        default = self.defaults.get(word)
        return Expr(edm, lambda row: row.get(word, default))


def _require_bool(expr: Expr) -> None:
    if expr.edm != "Edm.Boolean":
        raise FilterError("Operand of a logical operator is not Boolean")


def _logical(left: Expr, right: Expr, combine: Callable[[Any], bool]) -> Expr:
    _require_bool(left)
    _require_bool(right)
    return Expr("Edm.Boolean", lambda row: combine((left.get(row), right.get(row))))


_NUMERIC = {
    "Edm.Decimal",
    "Edm.Double",
    "Edm.Single",
    "Edm.Int16",
    "Edm.Int32",
    "Edm.Int64",
    "Edm.Byte",
    "Edm.SByte",
}
_DATETIMES = {"Edm.DateTime", "Edm.DateTimeOffset"}


def _family(edm: str | None) -> str | None:
    if edm in _NUMERIC:
        return "number"
    if edm in _DATETIMES:
        return "datetime"
    return edm


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _compare(operator: str, left: Expr, right: Expr) -> Expr:
    lf, rf = _family(left.edm), _family(right.edm)
    if lf is not None and rf is not None and lf != rf:
        raise FilterError(
            f"Incompatible types {left.edm} and {right.edm} for operator '{operator}'"
        )
    op = _OPERATORS[operator]

    def evaluate(row: Row) -> bool:
        a, b = left.get(row), right.get(row)
        if a is None or b is None:  # null only equals null; ordering with null is false
            if operator == "eq":
                return a is None and b is None
            return operator == "ne" and not (a is None and b is None)
        return op(a, b)

    return Expr("Edm.Boolean", evaluate)


def _literal(token: Token) -> Expr:
    value, edm = literal_value(token.text)
    return Expr(edm, lambda row: value)


def literal_value(text: str) -> tuple[Any, str]:
    """Python value and EDM type of one URI literal (also used for key predicates)."""
    if text.startswith("'"):
        return text[1:-1].replace("''", "'"), "Edm.String"
    if text.endswith("'") and "'" in text:
        prefix, body = text.split("'", 1)
        body = body[:-1].replace("''", "'")
        return _typed_literal(prefix, body)
    try:
        number = Decimal(text.rstrip("mMlLdDfF"))
    except InvalidOperation as exc:  # pragma: no cover - the tokenizer guards this
        raise FilterError(f"Invalid number {text}") from exc
    return number, "Edm.Decimal"


def _typed_literal(prefix: str, body: str) -> tuple[Any, str]:
    try:
        if prefix == "datetime":
            return datetime.fromisoformat(body), "Edm.DateTime"
        if prefix == "datetimeoffset":
            moment = datetime.fromisoformat(body.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment, "Edm.DateTimeOffset"
        if prefix == "time":
            return parse_duration(body), "Edm.Time"
        if prefix == "guid":
            return body.lower(), "Edm.Guid"
    except ValueError as exc:
        raise FilterError(f"Invalid {prefix} literal '{body}'") from exc
    raise FilterError(f"Literal type '{prefix}' is not supported")


def parse_duration(text: str) -> time:
    """``PT10H37M02S`` -> ``time(10, 37, 2)``."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return time(hours, minutes, seconds)


def _string_function(name: str, arity: int, result: str, fn: Callable[..., Any]) -> Any:
    def build(args: list[Expr]) -> Expr:
        if len(args) != arity or any(a.edm not in {"Edm.String", None} for a in args):
            raise FilterError(f"Function '{name}' expects {arity} string argument(s)")

        def evaluate(row: Row) -> Any:
            values = [a.get(row) for a in args]
            return None if any(v is None for v in values) else fn(*values)

        return Expr(result, evaluate)

    return build


_FUNCTIONS: dict[str, Callable[[list[Expr]], Expr]] = {
    "substringof": _string_function("substringof", 2, "Edm.Boolean", lambda a, b: a in b),
    "startswith": _string_function("startswith", 2, "Edm.Boolean", str.startswith),
    "endswith": _string_function("endswith", 2, "Edm.Boolean", str.endswith),
    "tolower": _string_function("tolower", 1, "Edm.String", str.lower),
    "toupper": _string_function("toupper", 1, "Edm.String", str.upper),
}
