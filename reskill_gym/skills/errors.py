"""Typed errors for skills and skill libraries.

Exports: ``SkillError``, ``UnsafePatternError``, ``LibraryError``, ``StoreError``.

Every error carries the file and the field it is about, so a bad skill found among hundreds
can be fixed without a debugger (``skills/alfworld/heat-food/SKILL.md: metadata
'reskill.trigger.pattern': nested quantifier ...``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SkillError", "UnsafePatternError", "LibraryError", "StoreError"]


class SkillError(ValueError):
    """A skill (or its SKILL.md) is invalid.

    >>> str(SkillError("must be lowercase", path="x/SKILL.md", field="name"))
    "x/SKILL.md: field 'name': must be lowercase"
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.path:
            parts.append(self.path)
        if self.field:
            parts.append(f"field {self.field!r}")
        parts.append(self.message)
        return ": ".join(parts)

    def at(self, path: str | Path | None = None, field: str | None = None) -> SkillError:
        """Return a copy located at ``path``/``field`` (keeps whatever was already set)."""
        return type(self)(
            self.message,
            path=self.path or (str(path) if path is not None else None),
            field=self.field or field,
        )


class UnsafePatternError(SkillError):
    """A trigger regex is rejected: too long, catastrophic backtracking, or does not compile."""


class LibraryError(RuntimeError):
    """A skill library operation cannot be done (unknown version, dirty working copy, ...)."""


class StoreError(LibraryError):
    """The ``.reskill`` store is corrupt or was tampered with; the message names the file.

    Raised before anything is written or deleted: a store entry that would point outside
    the library (``../x``), a hash that is not a hash, a blob whose content does not match
    its hash, or a store file that is a symbolic link.

    >>> str(StoreError("lib/.reskill/versions/abc.json: skill name '../x' is invalid"))
    "lib/.reskill/versions/abc.json: skill name '../x' is invalid"
    """
