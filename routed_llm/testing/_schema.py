"""Deterministic example values generated from a JSON schema (stdlib only).

Used by the local OpenAI-compatible server to build tool-call arguments and
`response_format` JSON. The rules are small and predictable: integers are 3, numbers
3.0, strings "a" (or a given text), booleans true, the first enum/const value wins, arrays hold one item,
objects hold their required properties (all properties when `required` is absent),
`anyOf`/`oneOf` take the first non-null branch and `$ref` resolves against `$defs`
or `definitions` of the root schema.
"""

from __future__ import annotations

from typing import Any

__all__ = ["example_from_schema"]

_MAX_DEPTH = 12
_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "a@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def example_from_schema(schema: Any, root: Any = None, depth: int = 0, *, text: str = "a") -> Any:
    """Return a deterministic value that satisfies common parts of `schema`.

    Args:
        schema: A JSON schema (dict), possibly with `$ref`, `anyOf` and `$defs`.
        root: The root schema used to resolve `$ref`; defaults to `schema`.
        depth: Current recursion depth (recursive schemas stop at a fixed depth).
        text: The value used for plain strings.

    Returns:
        A JSON-serialisable value.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return example_from_schema(_resolve(schema["$ref"], root), root, depth + 1, text=text)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example_from_schema(_first_non_null(schema[key]), root, depth + 1, text=text)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
            merged.update(part if isinstance(part, dict) else {})
        return example_from_schema(merged, root, depth + 1, text=text)
    return _example_for_type(schema, _schema_type(schema), root, depth, text)


def _example_for_type(schema: dict[str, Any], kind: str, root: Any, depth: int, text: str) -> Any:
    """Return the example for one concrete JSON type."""
    if kind == "object":
        return _example_object(schema, root, depth, text)
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        if isinstance(items, list):  # tuple form
            return [example_from_schema(item, root, depth + 1, text=text) for item in items]
        count = max(1, int(schema.get("minItems", 1)))
        count = min(count, int(schema.get("maxItems", count)))
        return [example_from_schema(items, root, depth + 1, text=text) for _ in range(count)]
    if kind == "integer":
        return int(_clamp(3, schema))
    if kind == "number":
        return float(_clamp(3.0, schema))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _example_string(schema, text)


def _example_object(schema: dict[str, Any], root: Any, depth: int, text: str) -> dict[str, Any]:
    """Return an object holding the required (or, without `required`, all) properties."""
    props: dict[str, Any] = schema.get("properties") or {}
    names = schema["required"] if "required" in schema else list(props)
    return {
        name: example_from_schema(props.get(name, {"type": "string"}), root, depth + 1, text=text) for name in names
    }


def _example_string(schema: dict[str, Any], text: str) -> str:
    """Return `text` (padded to minLength, cut to maxLength) or a sample for a known format."""
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _STRING_FORMATS:
        return _STRING_FORMATS[fmt]
    value = text.ljust(int(schema.get("minLength", 1)), "a")
    return value[: int(schema["maxLength"])] if "maxLength" in schema else value


def _schema_type(schema: dict[str, Any]) -> str:
    """Return the JSON type of `schema`, guessing from its keys when `type` is absent."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _clamp(value: float, schema: dict[str, Any]) -> float:
    """Clamp `value` into [minimum, maximum] (exclusive bounds move by one)."""
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        value = max(value, schema["exclusiveMinimum"] + 1)
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        value = min(value, schema["exclusiveMaximum"] - 1)
    return value


def _first_non_null(options: list[Any]) -> Any:
    """Return the first option that is not `{"type": "null"}`."""
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0] if options else {}


def _resolve(ref: str, root: Any) -> Any:
    """Resolve a local JSON pointer such as `#/$defs/Item`; unknown refs give `{}`."""
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node
