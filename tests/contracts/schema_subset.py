"""A small JSON Schema checker for the keywords ``eth_rpc_schema.json`` uses ($ref to a
component by name, type, pattern, enum, minimum/maximum, required, properties,
additionalProperties: false, items, allOf, anyOf, oneOf), answering every difference
with its path, so a conformance test can list them all."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("eth_rpc_schema.json")
_TYPES: dict[str, Any] = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}


def load() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _is_type(value: Any, name: str) -> bool:
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name]) and not (name != "boolean" and isinstance(value, bool))


def differences(value: Any, schema: dict[str, Any], components: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` differs from ``schema`` ([] when it conforms)."""
    if "$ref" in schema:
        return differences(value, components[schema["$ref"]], components, path)
    out: list[str] = []
    if "type" in schema and not _is_type(value, schema["type"]):
        return [f"{path}: {json.dumps(value)[:80]} is not of type {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{path}: {value[:80]!r} does not match {schema['pattern']}")
    if ("minimum" in schema and value < schema["minimum"]) or ("maximum" in schema and value > schema["maximum"]):
        out.append(f"{path}: {value} is out of range")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{path}: missing {key}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in props:
                out += differences(item, props[key], components, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{path}: unexpected field {key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += differences(item, schema["items"], components, f"{path}[{i}]")
    for sub in schema.get("allOf", []):
        out += differences(value, sub, components, path)
    if "anyOf" in schema:
        branches = [differences(value, sub, components, path) for sub in schema["anyOf"]]
        if all(branches):
            out.append(f"{path}: matches none of anyOf: {min(branches, key=len)}")
    if "oneOf" in schema:
        branches = [differences(value, sub, components, path) for sub in schema["oneOf"]]
        matching = sum(1 for b in branches if not b)
        if matching != 1:
            out.append(f"{path}: matches {matching} of oneOf: {min(branches, key=len) if not matching else ''}")
    return out
