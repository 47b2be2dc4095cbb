"""A small XML Schema validator for the types embedded in SAP's WSDL.

SAP's A2X WSDLs use a narrow subset of XSD: complex types that are a plain ``xsd:sequence`` of
local elements (with minOccurs/maxOccurs), complex types with simple content and attributes, and
simple types restricting a built-in type with length, pattern, digit and range facets. This
module loads exactly that subset from the WSDL file and validates a parsed element tree against
it, so element order, mandatory children, lengths and formats come from SAP's artefact rather
than a hand-written copy. Local elements are unqualified (no ``elementFormDefault``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from defusedxml import ElementTree as SafeET

XSD = "{http://www.w3.org/2001/XMLSchema}"
_DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_LANGUAGE_RE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")


class SchemaViolation(Exception):
    """The XML does not match the WSDL schema; the message names the element and the rule."""


@dataclass(frozen=True)
class SimpleType:
    """A restriction of a built-in XSD type."""

    name: str
    base: str  # built-in local name: token, string, decimal, date, dateTime, boolean, ...
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    total_digits: int | None = None
    fraction_digits: int | None = None
    min_inclusive: Decimal | None = None
    max_inclusive: Decimal | None = None


@dataclass(frozen=True)
class Particle:
    """One ``xsd:element`` of a sequence."""

    name: str
    type_name: str
    min_occurs: int = 1
    max_occurs: int | None = 1  # None = unbounded


@dataclass(frozen=True)
class Attribute:
    name: str
    type_name: str | None
    required: bool
    inline: SimpleType | None = None


@dataclass(frozen=True)
class ComplexType:
    """Either a sequence of elements or simple content (``content_type``) with attributes."""

    name: str
    sequence: tuple[Particle, ...] = ()
    content_type: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def particle_names(self) -> list[str]:
        return [p.name for p in self.sequence]


@dataclass
class Schema:
    """Global elements and named types of one ``xsd:schema``."""

    target_namespace: str
    elements: dict[str, str] = field(default_factory=dict)
    simple_types: dict[str, SimpleType] = field(default_factory=dict)
    complex_types: dict[str, ComplexType] = field(default_factory=dict)

    def validate(self, element: Any, type_name: str) -> None:
        """Validate ``element`` (an ElementTree element) against the named type."""
        _Validator(self).element(element, type_name, _local(element.tag))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _builtin(type_name: str) -> str | None:
    return type_name.split(":", 1)[1] if type_name.startswith("xsd:") else None


def _occurs(value: str | None, default: int | None) -> int | None:
    if value is None:
        return default
    return None if value == "unbounded" else int(value)


@cache
def load_wsdl_schema(path: Path) -> Schema:
    """Parse the ``xsd:schema`` embedded in a WSDL file (cached per path)."""
    root = SafeET.parse(str(path)).getroot()
    node = next(root.iter(f"{XSD}schema"))
    schema = Schema(target_namespace=node.get("targetNamespace", ""))
    for child in node:
        name = child.get("name", "")
        if child.tag == f"{XSD}element":
            schema.elements[name] = child.get("type", "")
        elif child.tag == f"{XSD}simpleType":
            schema.simple_types[name] = _simple_type(name, child)
        elif child.tag == f"{XSD}complexType":
            schema.complex_types[name] = _complex_type(name, child)
    return schema


def _simple_type(name: str, node: Any) -> SimpleType:
    restriction = node.find(f"{XSD}restriction")
    base = _builtin(restriction.get("base", "xsd:string")) or "string"
    facets: dict[str, Any] = {}
    for facet in restriction:
        kind, value = _local(facet.tag), facet.get("value", "")
        if kind in {"length", "minLength", "maxLength", "totalDigits", "fractionDigits"}:
            key = re.sub(r"(?<!^)([A-Z])", r"_\1", kind).lower()
            facets[key] = int(value)
        elif kind == "pattern":
            facets["pattern"] = re.compile(value)
        elif kind in {"minInclusive", "maxInclusive"}:
            facets["min_inclusive" if kind == "minInclusive" else "max_inclusive"] = Decimal(value)
    return SimpleType(name=name, base=base, **facets)


def _complex_type(name: str, node: Any) -> ComplexType:
    sequence = node.find(f"{XSD}sequence")
    if sequence is not None:
        particles = tuple(
            Particle(
                name=el.get("name", ""),
                type_name=el.get("type", "xsd:string"),
                min_occurs=_occurs(el.get("minOccurs"), 1) or 0,
                max_occurs=_occurs(el.get("maxOccurs"), 1),
            )
            for el in sequence.findall(f"{XSD}element")
        )
        return ComplexType(name=name, sequence=particles)
    extension = node.find(f"{XSD}simpleContent/{XSD}extension")
    if extension is None:
        return ComplexType(name=name)
    attributes = []
    for attr in extension.findall(f"{XSD}attribute"):
        attr_name = attr.get("name", "")
        inline = attr.find(f"{XSD}simpleType")
        attributes.append(
            Attribute(
                name=attr_name,
                type_name=attr.get("type"),
                required=attr.get("use") == "required",
                inline=None if inline is None else _simple_type(f"{name}@{attr_name}", inline),
            )
        )
    return ComplexType(name=name, content_type=extension.get("base"), attributes=tuple(attributes))


class _Validator:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def element(self, el: Any, type_name: str, path: str) -> None:
        builtin = _builtin(type_name)
        if builtin is not None:
            self.simple_value(el.text, SimpleType(name=type_name, base=builtin), path)
            return
        complex_type = self.schema.complex_types.get(type_name)
        if complex_type is None:
            self.no_attributes(el, path)
            self.simple_value(el.text, self.schema.simple_types[type_name], path)
        elif complex_type.content_type is not None:
            self.attributes(el, complex_type, path)
            self.element_text(el, complex_type.content_type, path)
        else:
            self.no_attributes(el, path)
            if el.text and el.text.strip():
                raise SchemaViolation(f"{path}: text content is not allowed")
            self.sequence(el, complex_type, path)

    def element_text(self, el: Any, type_name: str, path: str) -> None:
        if len(el):
            raise SchemaViolation(f"{path}: child elements are not allowed")
        builtin = _builtin(type_name)
        simple = (
            SimpleType(name=type_name, base=builtin)
            if builtin
            else self.schema.simple_types[type_name]
        )
        self.simple_value(el.text, simple, path)

    def sequence(self, el: Any, ctype: ComplexType, path: str) -> None:
        particles = ctype.sequence
        index, count = 0, 0
        for child in el:
            if not isinstance(child.tag, str):  # comments, processing instructions
                continue
            name = child.tag
            if name.startswith("{"):
                raise SchemaViolation(f"{path}: element {name} must not be namespace-qualified")
            while index < len(particles) and particles[index].name != name:
                self.check_min(particles[index], count, path)
                index, count = index + 1, 0
            if index == len(particles):
                raise SchemaViolation(self.unexpected(ctype, name, path))
            count += 1
            particle = particles[index]
            if particle.max_occurs is not None and count > particle.max_occurs:
                raise SchemaViolation(f"{path}: element '{name}' occurs too often")
            self.element(child, particle.type_name, f"{path}/{name}")
        for particle in particles[index:]:
            self.check_min(particle, count, path)
            count = 0

    @staticmethod
    def check_min(particle: Particle, count: int, path: str) -> None:
        if count < particle.min_occurs:
            raise SchemaViolation(f"{path}: mandatory element '{particle.name}' is missing")

    @staticmethod
    def unexpected(ctype: ComplexType, name: str, path: str) -> str:
        if name in ctype.particle_names():
            return f"{path}: element '{name}' is out of sequence order (schema type {ctype.name})"
        return f"{path}: element '{name}' is not allowed here (schema type {ctype.name})"

    @staticmethod
    def no_attributes(el: Any, path: str) -> None:
        for name in el.attrib:
            if not name.startswith("{"):
                raise SchemaViolation(f"{path}: attribute '{name}' is not allowed")

    def attributes(self, el: Any, ctype: ComplexType, path: str) -> None:
        known = {a.name: a for a in ctype.attributes}
        for name in el.attrib:
            if not name.startswith("{") and name not in known:
                raise SchemaViolation(f"{path}: attribute '{name}' is not allowed")
        for attr in ctype.attributes:
            value = el.get(attr.name)
            if value is None:
                if attr.required:
                    raise SchemaViolation(f"{path}: attribute '{attr.name}' is missing")
                continue
            simple = attr.inline or self.schema.simple_types.get(attr.type_name or "")
            if simple is None:
                simple = SimpleType(name="token", base="token", min_length=1)
            self.simple_value(value, simple, f"{path}/@{attr.name}")

    def simple_value(self, raw: str | None, st: SimpleType, path: str) -> None:
        text = raw or ""
        value = " ".join(text.split()) if st.base in _COLLAPSED else text
        _check_lengths(value, st, path)
        if st.pattern is not None and not st.pattern.fullmatch(value):
            raise SchemaViolation(f"{path}: value '{value}' does not match the pattern")
        checker = _BASE_CHECKS.get(st.base)
        if checker is not None:
            checker(value, st, path)


_COLLAPSED = {"token", "decimal", "date", "dateTime", "boolean", "duration", "language"}


def _check_lengths(value: str, st: SimpleType, path: str) -> None:
    size = len(value)
    if st.length is not None and size != st.length:
        raise SchemaViolation(f"{path}: length {size} differs from the fixed length {st.length}")
    if st.min_length is not None and size < st.min_length:
        raise SchemaViolation(f"{path}: value is shorter than {st.min_length}")
    if st.max_length is not None and size > st.max_length:
        raise SchemaViolation(f"{path}: length {size} exceeds the maximum length {st.max_length}")


def _check_decimal(value: str, st: SimpleType, path: str) -> None:
    if not _DECIMAL_RE.fullmatch(value):
        raise SchemaViolation(f"{path}: '{value}' is not a decimal")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise SchemaViolation(f"{path}: '{value}' is not a decimal") from exc
    _sign, digits, exp = number.normalize().as_tuple()
    exponent = int(exp)
    fraction = max(0, -exponent)
    total = len(digits) + exponent if exponent >= 0 else max(len(digits), fraction)
    if st.fraction_digits is not None and fraction > st.fraction_digits:
        raise SchemaViolation(f"{path}: more than {st.fraction_digits} fraction digits")
    if st.total_digits is not None and total > st.total_digits:
        raise SchemaViolation(f"{path}: more than {st.total_digits} digits")
    if st.min_inclusive is not None and number < st.min_inclusive:
        raise SchemaViolation(f"{path}: below the minimum {st.min_inclusive}")
    if st.max_inclusive is not None and number > st.max_inclusive:
        raise SchemaViolation(f"{path}: above the maximum {st.max_inclusive}")


def _check_date(value: str, st: SimpleType, path: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise SchemaViolation(f"{path}: '{value}' is not a valid date") from exc


def _check_datetime(value: str, st: SimpleType, path: str) -> None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaViolation(f"{path}: '{value}' is not a valid dateTime") from exc


def _check_boolean(value: str, st: SimpleType, path: str) -> None:
    if value not in {"true", "false", "1", "0"}:
        raise SchemaViolation(f"{path}: '{value}' is not a boolean")


def _check_language(value: str, st: SimpleType, path: str) -> None:
    if not _LANGUAGE_RE.fullmatch(value):
        raise SchemaViolation(f"{path}: '{value}' is not a language code")


_BASE_CHECKS = {
    "decimal": _check_decimal,
    "date": _check_date,
    "dateTime": _check_datetime,
    "boolean": _check_boolean,
    "language": _check_language,
}
