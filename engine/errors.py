"""The one exception hierarchy of the engine; every message is written for the person who caused it.

Library errors (yaml, pydantic, jinja, httpx) are translated where they happen and raised ``from`` the
original; ``cli.py`` turns these classes into exit codes and is the only place that prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BudgetError",
    "CredentialError",
    "ImageError",
    "InputError",
    "Location",
    "OutputError",
    "OverlayError",
    "PayloadError",
    "RecipeError",
    "RenderError",
    "SpecError",
    "SpecImportError",
    "Violation",
    "YamlError",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where something came from: a file and, when known, a 1-based line."""

    file: str
    line: int | None = None

    @classmethod
    def of(cls, path: str | Path, line: int | None = None) -> Location:
        return cls(str(path), line)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class RenderError(Exception):
    """Base of every error the engine raises on purpose; ``str()`` is the user-facing message."""


class InputError(RenderError):
    """Something the user gave us (a recipe, a spec, a page, a flag) is invalid. Exit code 2."""


class YamlError(InputError):
    """A YAML file could not be read: bad syntax, a duplicate key, or not the expected shape."""


class SpecError(InputError):
    """A spec file is invalid, or a spec id names no spec."""


class SpecImportError(InputError):
    """An API page could not be read into a spec."""

    def __init__(self, location: Location, problem: str) -> None:
        self.location = location
        self.problem = problem
        super().__init__(f"{location}: {problem}")


class OverlayError(InputError):
    """An overlay file is invalid or does not fit the page it corrects."""


class RecipeError(InputError):
    """A recipe is invalid: its YAML, its fields, its matrix, its templates or its flags."""


class OutputError(InputError):
    """The output folder cannot be written as asked (a link out of it, a name it cannot hold)."""


class ImageError(InputError):
    """A local image cannot be sent: gone, not a picture, or outside the recipe's folder tree."""


class CredentialError(InputError):
    """The API key cannot be sent as it is; the message never shows the key."""


class BudgetError(RenderError):
    """A run would cost, or has cost, more than its budget allows. Exit code 3."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a payload breaks its spec: which parameter, the offending value, and what is allowed."""

    param: str
    problem: str
    value: object = None
    allowed: str | None = None

    @property
    def detail(self) -> str:
        """The problem and what is allowed, without the parameter's name."""
        return f"{self.problem} (allowed: {self.allowed})" if self.allowed else self.problem

    @property
    def message(self) -> str:
        return f"{self.param}: {self.detail}"

    def __str__(self) -> str:
        return self.message


class PayloadError(InputError):
    """A payload breaks its spec; carries every violation, not just the first."""

    def __init__(self, spec_id: str, violations: Sequence[Violation]) -> None:
        self.spec_id = spec_id
        self.violations = tuple(violations)
        count = len(self.violations)
        lines = "\n".join(f"  - {v.message}" for v in self.violations)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"payload for {spec_id} has {count} {noun}:\n{lines}")
