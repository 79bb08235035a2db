"""Turning model text into a pydantic object, and telling the model what went wrong.

Exports ``json_schema_of``, ``schema_instruction``, ``extract_json``, ``parse_output`` and
``repair_message``.

Models wrap JSON in prose or code fences, or stop half-way; ``extract_json`` takes the first
complete JSON object out of such text, and ``parse_output`` returns either the validated
object or one readable error that ``repair_message`` feeds back on the next try.

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
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as first_error:
        decoder = json.JSONDecoder()
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
