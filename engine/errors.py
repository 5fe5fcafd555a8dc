"""The one exception hierarchy of the engine; every message is written for the person who caused it.

    RenderError                  exit 1   anything the engine raises on purpose; str() is for users
    ├── InputError               exit 2   something the user gave us is invalid
    │   ├── YamlError                     a YAML file cannot be read
    │   ├── SpecError                     a spec file is invalid, or an id names no spec
    │   ├── SpecImportError               an API page cannot be read into a spec
    │   ├── OverlayError                  an overlay is invalid or does not fit its page
    │   ├── RecipeError                   a recipe, its matrix, its templates or its flags
    │   │   └── TemplateFailure           a template failed for one job (a plan problem of that job)
    │   ├── PayloadError                  a payload breaks its spec (every violation)
    │   ├── ImageError                    a local image cannot be sent
    │   ├── OutputError                   the output folder cannot be written as asked
    │   ├── CredentialError               the API key cannot be sent as it is
    │   └── LedgerError                   the ledger cannot be opened, reached or used as asked
    │       └── LedgerUnreachable         its database stopped answering (mid-run: journaled)
    ├── BudgetError              exit 3   a run would cost more than its budget
    └── ApiProblem               exit 1   how a request went, sorted by who pays (the runner decides)
        ├── Retryable                     not billed, worth trying again (429, 5xx, no connection)
        ├── JobFailed                     not billed; this job cannot succeed as asked
        ├── Ambiguous                     the request went out and no answer came: maybe billed
        └── Abort                exit 4   the account cannot go on: stop sending

Each class carries its exit code, so ``cli.py`` maps any error to its code in one place. An error
may carry its problems as ``(location, field, problem)``; :func:`problems_of` turns a pydantic
``ValidationError`` into them. Library errors (yaml, pydantic, jinja, httpx) are translated where
they happen and raised ``from`` the original; ``cli.py`` is the only place that prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = [
    "Abort",
    "Ambiguous",
    "ApiProblem",
    "BudgetError",
    "CredentialError",
    "ImageError",
    "InputError",
    "JobFailed",
    "LedgerError",
    "LedgerUnreachable",
    "Location",
    "OutputError",
    "OverlayError",
    "PayloadError",
    "Problem",
    "RecipeError",
    "RenderError",
    "Retryable",
    "SpecError",
    "SpecImportError",
    "TemplateFailure",
    "Violation",
    "YamlError",
    "field_name",
    "problems_of",
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, structured: where, which field, and what (for the person to fix)."""

    location: Location | None
    field: str | None
    problem: str

    def __str__(self) -> str:
        parts = [str(part) for part in (self.location, self.field) if part]
        return ": ".join([*parts, self.problem])


class RenderError(Exception):
    """Base of every error the engine raises on purpose; ``str()`` is the user-facing message."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str = "", *, problems: Sequence[Problem] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__(message or "\n".join(str(problem) for problem in self.problems))


class InputError(RenderError):
    """Something the user gave us (a recipe, a spec, a page, a flag) is invalid. Exit code 2."""

    exit_code = 2


class YamlError(InputError):
    """A YAML file could not be read: bad syntax, a duplicate key, or not the expected shape."""


class SpecError(InputError):
    """A spec file is invalid, or a spec id names no spec."""


class SpecImportError(InputError):
    """An API page could not be read into a spec."""

    def __init__(self, location: Location, problem: str) -> None:
        self.location = location
        self.problem = problem
        super().__init__(problems=[Problem(location, None, problem)])


class OverlayError(InputError):
    """An overlay file is invalid or does not fit the page it corrects."""


class RecipeError(InputError):
    """A recipe is invalid: its YAML, its fields, its matrix, its templates or its flags."""


class TemplateFailure(RecipeError):
    """A template failed for one combination; the plan turns it into that job's problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageError(InputError):
    """An image cannot be used: gone, not a picture, too large to decode safely, or outside the
    recipe's folder tree."""


class OutputError(InputError):
    """The output folder cannot be written as asked (a link out of it, a name it cannot hold)."""


class CredentialError(InputError):
    """The API key cannot be sent as it is; the message never shows the key."""


class LedgerError(InputError):
    """The ledger cannot be opened or reached (a file, a PostgreSQL server), or a pool, a run or
    a worker it is asked about does not exist. Exit code 2: nothing was sent."""


class LedgerUnreachable(LedgerError):
    """The ledger's database (PostgreSQL) does not answer. At the start of a command nothing is
    sent; mid-run no new request is, and what the jobs in flight write waits in a local journal."""


class BudgetError(RenderError):
    """A run would cost, or has cost, more than its budget allows. Exit code 3."""

    exit_code = 3


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


class ApiProblem(RenderError):
    """Something went wrong with a request; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Retryable(ApiProblem):
    """Not billed, worth trying again: 429, 5xx, or a connection that failed before the request
    left. ``rate_limited`` marks a 429, whose wait the run's pace learns from."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class JobFailed(ApiProblem):
    """This job cannot succeed as asked (400, 405, 406 about a parameter, 410, 422, FAILED); not
    billed; other jobs go on."""


class Abort(ApiProblem):
    """The account cannot go on (401, 403, 404, a 406 about credits): stop sending. Exit code 4."""

    exit_code = 4


class Ambiguous(ApiProblem):
    """The request went out and no answer came back: it may have been billed."""


class _Located(Protocol):
    def location(self, keys: Sequence[str | int] = ()) -> Location: ...


def field_name(loc: Sequence[Any]) -> str:
    """A pydantic ``loc`` as a person names the field: ``exclude[0].style``, ``params.seed``."""
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) and text else f".{part}" if text else str(part)
    return text


Describe = Callable[[Mapping[str, Any]], tuple[str | None, str]]


def _pydantic_words(error: Mapping[str, Any]) -> tuple[str | None, str]:
    return field_name(error["loc"]) or None, str(error["msg"]).removeprefix("Value error, ")


def problems_of(
    exc: Any,
    doc: _Located | None = None,
    *,
    describe: Describe = _pydantic_words,
    locate: Callable[[Sequence[Any]], Location | None] | None = None,
) -> list[Problem]:
    """A pydantic ``ValidationError`` as problems, in pydantic's order: the file and line of each
    field (from ``doc``'s lines, or ``locate``), and the field and the words ``describe`` gives
    (pydantic's own by default)."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if locate is not None:
            where = locate(loc)
        else:
            where = doc.location(tuple(p for p in loc if p != "[key]")) if doc else None
        field, text = describe(error)
        problems.append(Problem(where, field, text))
    return problems
