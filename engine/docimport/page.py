"""A Segmind API page as numbered lines, with the small searches every layout needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.docimport.unfold import unfold
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
    """The page's text as lines; line numbers are 1-based, as an editor shows them.

    A reader may store a page run together (``imagerequiredstring (uri)Input Image``, or the whole
    page on one line): each stored line is split back into the lines the layouts print, so
    ``lines`` holds those, and ``origin`` the stored line each came from. Every number the importer
    passes around counts ``lines``; ``where`` and ``warn`` turn it into the stored line, which is
    what a user finds in an editor.
    """

    name: str
    lines: list[str]
    notes: list[Note] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    # The text stops mid-line (no newline or space after its last character): the last line may
    # be cut mid-word, mid-number or mid-URL.
    ends_mid_line: bool = False

    @classmethod
    def from_text(cls, text: str, name: str) -> Page:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
        lines: list[str] = []
        origin: list[int] = []
        for number, stored in enumerate(text.split("\n"), 1):
            for line in unfold(stored.rstrip()):
                lines.append(line)
                origin.append(number)
        return cls(name, lines, origin=origin, ends_mid_line=bool(text) and not text[-1].isspace())

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

    def is_cut(self, number: int | None) -> bool:
        """Whether line ``number`` is where the page was cut off, so its end may be missing."""
        return self.ends_mid_line and number is not None and number == len(self.lines)

    def last_line(self) -> int:
        """The number of the page's last line that is not blank."""
        number = len(self.lines)
        while number > 1 and not self.lines[number - 1].strip():
            number -= 1
        return number

    def stored_line(self, number: int | None) -> int | None:
        """The line of the stored text that line ``number`` comes from."""
        if number is None or not self.origin:
            return number
        return self.origin[min(max(number, 1), len(self.origin)) - 1]

    def where(self, line: int | None) -> Location:
        return Location(self.name, self.stored_line(line))

    def warn(self, line: int | None, message: str, topic: tuple[str, ...] = ()) -> None:
        self.notes.append(Note(self.stored_line(line), message, topic))
