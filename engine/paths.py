"""Names the engine writes to disk, checked before anything is paid for.

A recipe's name and each job's output path become folders and files; a name a file system refuses
(too long, a NUL), one that reads differently from what it is (a right-to-left mark), or one Windows
reserves (CON, COM1) would fail only after Segmind had billed the picture. So they are refused when
the plan is made, with the reason.
"""

from __future__ import annotations

import functools
import re

__all__ = ["RESERVED_IN_OUTPUT", "component_problem", "path_problem", "shown"]

# What render keeps in an output folder beside the pictures.
RESERVED_IN_OUTPUT = frozenset({"manifest.jsonl", "index.html", "runs"})
_MAX_BYTES = 255
_WINDOWS_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])$", re.IGNORECASE)
_WINDOWS_REFUSES = '<>:"|?*\\'
# Marks that change the direction text is shown in: `gpj.exe` can show as `exe.jpg`.
_DIRECTION_MARKS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _hidden(char: str) -> bool:
    return ord(char) < 32 or ord(char) == 127 or char in _DIRECTION_MARKS


def shown(text: str) -> str:
    """``text`` as a message can show it: control characters and direction marks as escapes."""
    return "".join(f"\\u{ord(c):04x}" if _hidden(c) else c for c in text)


@functools.lru_cache(maxsize=4096)
def component_problem(part: str) -> str | None:
    """Why ``part`` cannot be one folder or file name (a phrase after "it"), or None when it can.

    Cached: the jobs of a plan share most of their folder names."""
    if not part:
        return "is empty"
    if part in {".", ".."}:
        return "would leave the folder"
    if "/" in part:
        return "holds /, which separates folders"
    if part.startswith("."):
        return "starts with '.' (render keeps such names for its own files)"
    if any(ord(char) < 32 or ord(char) == 127 for char in part):
        return "holds a control character (such as NUL or a line break)"
    if any(char in _DIRECTION_MARKS for char in part):
        return "holds a right-to-left or other direction mark, which makes a name read as another"
    refused = "".join(char for char in _WINDOWS_REFUSES if char in part)
    if refused:
        return f"holds {refused}, which Windows refuses in file names"
    if part.endswith((".", " ")):
        return "ends in a dot or a space, which Windows drops"
    device = part.split(".", 1)[0].rstrip(" ")
    if _WINDOWS_RESERVED.match(device):
        return f"is named {device}, which Windows reserves for a device"
    size = len(part.encode("utf-8"))
    if size > _MAX_BYTES:
        return f"is {size} bytes long; file systems allow {_MAX_BYTES}"
    return None


def path_problem(path: str) -> str | None:
    """Why a relative path (``/``-separated) cannot be written inside an output folder."""
    parts = path.split("/")
    if parts[0] in RESERVED_IN_OUTPUT:
        return f"'{parts[0]}' is where render keeps its own records in the output folder"
    for part in parts:
        problem = component_problem(part)
        if problem is not None:
            return f"the part '{shown(part)}' {problem}"
    return None
