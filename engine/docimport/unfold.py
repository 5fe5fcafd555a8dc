"""Lines a reader stored run together, split back into the lines Segmind's layouts print.

Readers store the same page in several ways: one printed line a stored line (the layouts the importer
reads), a compact rendering that runs neighbours together (``imagerequiredstring (uri)Input Image``,
``7.5Range: 0.1 - 25negative_promptoptional…``, ``+4 moreinput_image``), or the whole page on one
line. Each stored line is cut where the layouts print a mark (a section heading, ``Default:``,
``Range: a - b``, a parameter's name and flag, a code sample's line number) into the lines the readers
downstream expect. A line that already is one printed line comes back unchanged, and nothing inside
double quotes is ever cut: a default or a sample's string may hold any of these marks.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable

__all__ = ["unfold"]

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')

# A code sample's first line ("1import requests", "1const axios = …", "1# pip install …"), then its
# line numbers in order: a number is a line number only when it is the next one expected, which
# keeps the numbers inside the code (`"samples": 1,`, `time.sleep(7)`) from cutting it.
_CODE_START = re.compile(r"(?<!\S)1(?=import\b|from\b|const\b|let\b|var\b|#|//)")
_CODE_NUMBER = re.compile(r"(?<!\S)(\d{1,3})(?![\d.,:;%])")
_GLUED_CODE = re.compile(r"\d{1,3}(?:[A-Za-z_#\"'{}()\[\]/]|\s+\d{1,3}(?![\d.,:;%]))")

_TYPE_WORD = r"(?:string|integer|number|boolean|array|object)"
_NAMED_TYPE = r"(?:enum:\w+|str|int|integer|float|number|bool|boolean|image|array|list|object|dict)"

# Marks that stand on a line of their own: cut before and after each.
_SECTIONS = re.compile(
    r"API Endpoint|Response Type|Common Error Codes|HTTP Response Codes"
    r"|Asynchronous requests \(v2\)"
    r"|(?<![A-Za-z])RESPONSE(?![A-Za-z])"
    # Run into the endpoint's URL ("…/v1/sd1.5-controlnet-softedgeParameters"), or before the first
    # parameter of a page on one line.
    r"|(?<=[a-z0-9])Parameters(?=\s|$)"
    r"|(?<!\S)Parameters(?=\s+[A-Za-z_][\w.\-]*\s*(?:required|optional)|\s*$)"
    rf"|(?<!\S)Attributes(?=\s+[A-Za-z_]\w*?{_NAMED_TYPE}\s*(?:\*|\())"
    r"|(?<=Expand )Attributes(?=\s|$)"
    # "POSThttps://…", "POST/v1/<slug>", "POST /v2/<slug> · submit + poll": the target is one word.
    r"|(?<![A-Za-z])POST\s*(?:https?://|/(?:v\d+|workflows)/)\S*"
    # The page's header: "~20.55s", "~$0.02", "$0.05 per generation".
    r"|(?<!\S)~\s*\d+(?:\.\d+)?\s*s(?!\w)"
    r"|(?<!\S)~?\s*\$\s*\d+(?:\.\d+)?(?:\s*(?:per\b|/)\s*(?:GPU[\s-]+)?[A-Za-z]+)?"
)
_AFTER_TITLE = re.compile(r"Serverless API(?=\s)")

# Labels that begin a line.
_LABELS = re.compile(r"Default\s*:|Allowed values|(?<!\S)(?:min|max)\s*:")
_LIMIT = re.compile(r"(?<!\S)(?:min|max)\s*:\s*-?[\d.]+,?")
# An older page's attribute heading: "seedint ( default: -1 )", "promptstr *".
_NAMED_HEADER = re.compile(
    rf"(?<![A-Za-z_.\-\[\]])[A-Za-z_]\w*?{_NAMED_TYPE}\s*(?:\*|\(\s*default\s*:[^)]*\))"
    r"(?:\s*Affects Pricing)?"
)

# What ends a value: a whole range, "+4 more", a value run into "Range:" ("7.5Range: 0.1 - 25").
_WHOLE_RANGE = re.compile(
    r"Range\s*:\s*-?[\d.]+\s*(?:-|–|to)\s*-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\d.])(?=\s*\S)"
)
_MORE = re.compile(r"\+\s*\d+\s*more(?=\s*\S)")
_VALUE_BEFORE_RANGE = re.compile(r'(?<!\S)(?:-?\d+(?:\.\d+)?|true|false|"[^"]*")(?=Range\s*:)')
_RANGE_AFTER_VALUE = re.compile(r"(?<=\S)Range\s*:")
_TRAILING_MORE = re.compile(r"\+\s*\d+\s+more$")

# A parameter's heading. Its name glued to its flag, then perhaps its type: "promptrequired",
# "imagerequiredstring (uri)Input Image", "seedoptional integer"; or its name, then its flag glued
# to its type: "prompt requiredstring".
# A name starts a word, or follows a value run into it ("2seedoptional"): never inside a dotted
# or bracketed name ("lora.scaleoptional").
_FLAGGED = re.compile(
    r"(?<![A-Za-z_.\-\[\]])(?P<name>[A-Za-z_][\w.\-\[\]]*?)(?P<flag>required|optional)"
    rf"(?:(?P<type>\s*{_TYPE_WORD}(?:\s*\([^)]*\))?)(?![a-z])|(?=\s|$))"
)
_NAME_THEN_FLAG = re.compile(
    r"(?<![A-Za-z_])(?P<name>[A-Za-z_][\w.\-]*)\s+"
    rf"(?P<flag>(?:required|optional){_TYPE_WORD}(?:\s*\([^)]*\))?)(?![a-z])"
)

# Anything any cutter below may cut at; most lines have none, and come back at once.
_TRIGGER = re.compile(
    "|".join(
        (
            _SECTIONS.pattern,
            _AFTER_TITLE.pattern,
            _LABELS.pattern,
            _NAMED_HEADER.pattern,
            r"Range\s*:",
            r"\+\s*\d+\s*more",
            r'"\s*"[^"]*"\s*(?:\+\s*\d+\s+more\s*)?$',
            r"required|optional",
            _CODE_START.pattern,
            r"(?<!\S)" + _GLUED_CODE.pattern,
        )
    )
)

Cutter = Callable[[str], Iterable[int]]


def unfold(line: str) -> list[str]:
    """The printed lines ``line`` holds: ``[line]`` itself unless it runs several together."""
    if not _TRIGGER.search(line):
        return [line]
    pieces = [line]
    for cutter in _CUTTERS:
        pieces = [part for piece in pieces for part in _cut(piece, cutter(piece))]
    return pieces if len(pieces) > 1 else [line]


class _Quotes:
    """The double-quoted stretches of a piece, asked whether a position falls inside one."""

    def __init__(self, piece: str) -> None:
        spans = [m.span() for m in _QUOTED.finditer(piece)]
        self.starts = [a for a, _ in spans]
        self.ends = [b for _, b in spans]

    def inside(self, position: int) -> bool:
        index = bisect.bisect_left(self.starts, position) - 1
        return index >= 0 and position < self.ends[index]


def _cut(piece: str, positions: Iterable[int]) -> list[str]:
    quotes = _Quotes(piece)
    cuts = sorted({p for p in positions if 0 < p < len(piece) and not quotes.inside(p)})
    if not cuts:
        return [piece]
    bounds = [0, *cuts, len(piece)]
    parts = (piece[a:b].strip() for a, b in itertools.pairwise(bounds))
    return [part for part in parts if part]


def _code_lines(piece: str) -> Iterable[int]:
    quotes = _Quotes(piece)
    numbers = [
        (m.start(), int(m.group(1)))
        for m in _CODE_NUMBER.finditer(piece)
        if not quotes.inside(m.start())
    ]
    expected: int | None = None
    for index, (at, value) in enumerate(numbers):
        if value == expected:
            expected += 1
            yield at
        elif _starts_code(piece, at, value, numbers[index + 1 : index + 2]):
            expected = value + 1
            yield at


def _starts_code(piece: str, at: int, value: int, following: list[tuple[int, int]]) -> bool:
    """A sample's first line ("1import requests"); or, where a page's head was lost, a number
    glued to code ("5# Async", "3 4url": an empty line, then code) whose next number follows it."""
    if value == 1 and _CODE_START.match(piece, at):
        return True
    glued = _GLUED_CODE.match(piece, at)
    return glued is not None and bool(following) and following[0][1] == value + 1


def _around(pattern: re.Pattern[str]) -> Cutter:
    def cutter(piece: str) -> Iterable[int]:
        for match in pattern.finditer(piece):
            yield match.start()
            yield match.end()

    return cutter


def _before(pattern: re.Pattern[str]) -> Cutter:
    return lambda piece: (match.start() for match in pattern.finditer(piece))


def _after(pattern: re.Pattern[str]) -> Cutter:
    return lambda piece: (match.end() for match in pattern.finditer(piece))


def _range_after_value(piece: str) -> Iterable[int]:
    # "Default: 3Range: 0 - 10" is one printed line; "7.5Range: 0.1 - 25" (a compact rendering with
    # no "Default:") is two, and so is "… guidance 7.5Range: 0.1 - 25" on a page on one line.
    if piece.startswith("Default"):
        return ()
    starts = (match.start() for match in _VALUE_BEFORE_RANGE.finditer(piece))
    return (*starts, *(match.start() for match in _RANGE_AFTER_VALUE.finditer(piece)))


def _value_run(piece: str) -> Iterable[int]:
    """Where two or more quoted values close the line (a compact rendering's allowed values run
    into the text before them, `… square images. "match_input_image" "1:1" +4 more`)."""
    end = len(piece.rstrip())
    more = _TRAILING_MORE.search(piece, 0, end)
    at = more.start() if more else end
    if '"""' in piece:  # a docstring, in code
        return
    first, count = 0, 0
    while True:
        while at > 0 and piece[at - 1] == " ":
            at -= 1
        if at == 0 or piece[at - 1] != '"':
            break
        opening = piece.rfind('"', 0, at - 1)
        if opening < 0:
            break
        first, count, at = opening, count + 1, opening
    if count >= 2 and (first == 0 or piece[first - 1].isspace()):
        yield first


def _headings(piece: str) -> Iterable[int]:
    for match in _FLAGGED.finditer(piece):
        yield match.start()
        yield match.end("flag")
        yield match.end()
    for match in _NAME_THEN_FLAG.finditer(piece):
        yield match.start()
        yield match.end("name")
        yield match.end()


_CUTTERS: tuple[Cutter, ...] = (
    _code_lines,
    _around(_SECTIONS),
    _after(_AFTER_TITLE),
    _before(_LABELS),
    _around(_LIMIT),
    _around(_NAMED_HEADER),
    _range_after_value,
    _after(_WHOLE_RANGE),
    _after(_MORE),
    _value_run,
    _headings,
)
