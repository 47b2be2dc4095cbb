"""Every example in the OpenAPI document is valid against the schema it sits beside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

from tests.support.bridge import Bridge

#: Keywords whose value is a subschema, a list of them, or a map of them
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "patternProperties")


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and every schema nested in it."""
    if not isinstance(schema, dict):
        return
    yield schema
    for keyword in _ONE:
        yield from _subschemas(schema.get(keyword))
    for keyword in _MANY:
        for item in schema.get(keyword, ()):
            yield from _subschemas(item)
    for keyword in _MAP:
        for item in schema.get(keyword, {}).values():
            yield from _subschemas(item)


def _examples_of(holder: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A media type's, parameter's or header's examples (`example`, `examples: {name: {value}}`)."""
    if "example" in holder:
        yield "example", holder["example"]
    for name, example in holder.get("examples", {}).items():
        yield name, example["value"]


def _holders(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object with a `schema` and maybe examples): parameters, bodies, responses,
    response headers."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", ()):
                yield f"{where} parameter {parameter['name']}", parameter
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
                yield f"{where} request {media_type}", media
            for code, response in operation.get("responses", {}).items():
                for media_type, media in response.get("content", {}).items():
                    yield f"{where} {code} {media_type}", media
                for name, header in response.get("headers", {}).items():
                    yield f"{where} {code} header {name}", header


def _checks(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) for every example in the document."""
    schemas: list[tuple[str, Any]] = list(document["components"]["schemas"].items())
    for where, holder in _holders(document):
        for name, example in _examples_of(holder):
            yield f"{where} {name}", holder.get("schema", {}), example
        schemas.append((where, holder.get("schema")))
    for where, top in schemas:
        for schema in _subschemas(top):
            if "example" in schema:
                yield f"{where} schema example", schema, schema["example"]
            for index, example in enumerate(schema.get("examples", ())):
                yield f"{where} schema examples[{index}]", schema, example


async def test_every_example_matches_its_schema(bridge: Bridge) -> None:
    async with bridge.client(None) as client:
        document = (await client.get("/openapi.json")).json()
    failures, checked = [], []
    for where, schema, example in _checks(document):
        # `#/components/...` references resolve against the root, so the root carries them
        validator = Draft202012Validator(
            {**schema, "components": document["components"]},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        checked.append(where)
        failures += [f"{where}: {error.message}" for error in validator.iter_errors(example)]
    assert not failures, "\n".join(failures)
    webhook = [w for w in checked if w.startswith("POST /webhooks/sap/payment")]
    assert len(checked) > 50 and len(webhook) >= 10, checked


async def test_every_security_requirement_names_a_defined_scheme(bridge: Bridge) -> None:
    """Swagger's Authorize dialog offers only the schemes the document defines: the API key
    must be one of them beside the webhook's two."""
    async with bridge.client(None) as client:
        document = (await client.get("/openapi.json")).json()
    defined = set(document["components"]["securitySchemes"])
    named = {
        scheme
        for path in document["paths"].values()
        for operation in path.values()
        for requirement in operation.get("security", [])
        for scheme in requirement
    }
    assert named and named <= defined, named - defined
    api_key = document["components"]["securitySchemes"]["APIKeyHeader"]
    assert (api_key["type"], api_key["in"], api_key["name"]) == ("apiKey", "header", "X-API-Key")
