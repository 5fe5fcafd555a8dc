"""A Segmind API page as numbered lines, with the small searches every layout needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.errors import Location

__all__ = ["Note", "Page"]


@dataclass(frozen=True, slots=True)
class Note:
    """A warning about the page: something read with doubt, or not read at all."""

    line: int | None
    message: str
    # What the note is about, as (field,) or (parameter, field): an overlay that sets it answers it.
    topic: tuple[str, ...] = ()


@dataclass
class Page:
    """The page's text split into lines; line numbers are 1-based, as an editor shows them."""

    name: str
    lines: list[str]
    notes: list[Note] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str, name: str) -> Page:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
        return cls(name, [line.rstrip() for line in text.split("\n")])

    def text(self, number: int) -> str:
        return self.lines[number - 1].strip() if 1 <= number <= len(self.lines) else ""

    def numbered(self, start: int = 1, stop: int | None = None) -> Iterator[tuple[int, str]]:
        """(line number, stripped text) for lines ``start`` up to, not including, ``stop``."""
        end = len(self.lines) + 1 if stop is None else min(stop, len(self.lines) + 1)
        for number in range(max(start, 1), end):
            yield number, self.lines[number - 1].strip()

    def find(self, pattern: re.Pattern[str], start: int = 1, stop: int | None = None) -> int | None:
        """The number of the first line from ``start`` whose stripped text matches ``pattern``."""
        for number, text in self.numbered(start, stop):
            if pattern.match(text):
                return number
        return None

    def where(self, line: int | None) -> Location:
        return Location(self.name, line)

    def warn(self, line: int | None, message: str, topic: tuple[str, ...] = ()) -> None:
        self.notes.append(Note(line, message, topic))
