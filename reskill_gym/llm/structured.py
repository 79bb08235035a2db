"""Turning model text into a pydantic object, and telling the model what went wrong.

Exports ``json_schema_of``, ``grammar_schema``, ``schema_instruction``, ``extract_json``,
``parse_output`` and ``repair_message``.

Models wrap JSON in prose or code fences, or stop half-way; ``extract_json`` takes the first
complete JSON object out of such text (raw newlines and tabs inside strings are accepted:
grammar-constrained servers such as llama.cpp let them through), and ``parse_output`` returns
either the validated object or one readable error that ``repair_message`` feeds back on the
next try.

``grammar_schema`` is the schema a server compiles into a sampling grammar: structure only
(keys, types, enums, required), without the length/pattern/count limits that llama.cpp's
converter expands into thousands of nested rules (a 2000-char limit is a 2000-deep rule that
fails to parse and, in llama-cpp-python 0.3, takes the server down). The limits are still in
the prompt and pydantic still checks them.

>>> from pydantic import BaseModel
>>> class Verdict(BaseModel):
...     ok: bool
>>> parse_output('Sure! ```json\\n{"ok": true}\\n```', Verdict)
(Verdict(ok=True), None)
>>> parse_output('{"ok": "maybe"}', Verdict)[1]
'schema validation failed: ok: Input should be a valid boolean, unable to interpret input'
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = [
    "json_schema_of",
    "grammar_schema",
    "schema_instruction",
    "extract_json",
    "parse_output",
    "repair_message",
]


def json_schema_of(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a pydantic model class (raises TypeError for anything else)."""
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"schema must be a pydantic BaseModel subclass, got {schema!r}")
    return schema.model_json_schema()


# Keywords that only bound sizes or shapes of values: validated client-side, left out of grammars.
_GRAMMAR_DROP = frozenset(
    {
        "maxLength",
        "minLength",
        "pattern",
        "format",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    }
)
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def grammar_schema(schema: Any) -> Any:
    """``schema`` without size, pattern and range limits (see the module docstring).

    Property *names* are kept even when they are keywords (a field called ``pattern``).

    >>> grammar_schema({"type": "object", "properties": {"pattern": {"type": "string",
    ...     "maxLength": 200, "pattern": "^a"}}, "required": ["pattern"]})
    {'type': 'object', 'properties': {'pattern': {'type': 'string'}}, 'required': ['pattern']}
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _GRAMMAR_DROP:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: grammar_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_ONE:
            out[key] = grammar_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [grammar_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def schema_instruction(schema: type[BaseModel]) -> str:
    """System-prompt text asking for one JSON object that follows ``schema``."""
    return (
        "Answer with only one JSON object, no prose and no code fences. "
        "It must conform to this JSON Schema:\n"
        + json.dumps(json_schema_of(schema), ensure_ascii=False)
    )


def extract_json(text: str) -> Any:
    """Decode the first JSON object in ``text`` (whole text first, then from each ``{``).

    Raises ``ValueError`` with a short reason when there is none.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty answer, expected a JSON object")
    decoder = json.JSONDecoder(strict=False)
    try:
        return decoder.decode(stripped)
    except json.JSONDecodeError as first_error:
        start = stripped.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(stripped, start)
            except json.JSONDecodeError:
                start = stripped.find("{", start + 1)
                continue
            return obj
        raise ValueError(
            f"no valid JSON object found ({first_error.msg} at char {first_error.pos})"
        ) from None


def _format_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = e.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_output(text: str, schema: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """``(instance, None)`` when ``text`` holds a JSON object valid for ``schema``, else ``(None, reason)``."""
    try:
        obj = extract_json(text)
    except ValueError as e:
        return None, f"invalid JSON: {e}"
    if not isinstance(obj, dict):
        return None, f"invalid JSON: expected an object, got {type(obj).__name__}"
    try:
        return schema.model_validate(obj), None
    except ValidationError as e:
        return None, f"schema validation failed: {_format_validation(e)}"


def repair_message(error: str) -> str:
    """The user turn that follows an unusable answer on a retry."""
    return (
        f"Your previous answer could not be used ({error}). "
        "Reply again with only the corrected JSON object that follows the schema."
    )
