"""Read YAML with the safe loader, keeping the line of every key and item; write YAML deterministically.

Reading also refuses what would blow up later: aliases that multiply a document out (a "billion
laughs"), nesting deeper than any recipe or spec needs, and numbers too long for Python to convert.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Location, YamlError
from engine.formatting import clipped

__all__ = ["LocatedYaml", "dump_yaml", "load_yaml", "parse_yaml"]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Key = str | int


@dataclass(frozen=True)
class LocatedYaml:
    """A parsed YAML document and the 1-based line of each key path in it."""

    path: str
    data: Any
    lines: dict[tuple[Key, ...], int] = field(repr=False)

    def line(self, keys: Sequence[Key]) -> int | None:
        """The line of the deepest known prefix of ``keys`` (a pydantic ``loc`` works as is)."""
        # YAML keys are indexed as text; a loc may carry them as numbers (a key written `2024:`).
        keys = tuple(keys)
        while keys:
            for candidate in (keys, (*keys[:-1], str(keys[-1]))):
                if candidate in self.lines:
                    return self.lines[candidate]
            keys = keys[:-1]
        return self.lines.get(())

    def location(self, keys: Sequence[Key] = ()) -> Location:
        return Location(self.path, self.line(keys))


def load_yaml(path: str | Path) -> LocatedYaml:
    """Read and parse a YAML file; a missing file or bad YAML is a :class:`YamlError` naming the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(f"{path}: cannot read: {exc}") from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, path: str) -> LocatedYaml:
    """Parse YAML text from ``path`` (used only in messages)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        # libyaml stops at 1,000 levels itself; PyYAML's own composer, used without it, recurses.
        raise YamlError(
            f"{path}: invalid YAML: nested more than {_Indexer.MAX_DEPTH} levels deep"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:
            # "did not find expected ',' or ']'" says little without "the list begun on line 3".
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise YamlError(f"{Location(path, line)}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{path}: invalid YAML: {exc}") from exc
    if node is None:
        return LocatedYaml(path, None, {(): 1})
    lines: dict[tuple[Key, ...], int] = {}
    _Indexer(path, lines).index(node, ())
    try:
        data = yaml.constructor.SafeConstructor().construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlError(f"{Location(path, line)}: invalid YAML: {exc.problem}") from exc
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # The indexer checked every scalar PyYAML converts; this is a last resort, without a line.
        raise YamlError(f"{path}: invalid YAML: {exc}") from exc
    return LocatedYaml(path, data, lines)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# Scalars PyYAML converts with Python functions that raise plain errors ('2024-13-45', `!!int x`).
_CONVERTED_TAGS = {_INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
# Python's limit for converting between text and int (sys.get_int_max_str_digits()).
_MAX_DIGITS = 4_300
_DIGITS_PER_CHARACTER = {"0b": math.log10(2), "0o": math.log10(8), "0x": math.log10(16)}


def _decimal_digits(node: yaml.ScalarNode) -> float:
    """How many decimal digits the number ``node`` holds, read from its text (hex, 1:30 and all)."""
    text = str(node.value).replace("_", "").lstrip("+-")
    if node.tag == _FLOAT_TAG:
        return sum(character.isdigit() for character in text)
    if ":" in text:  # sexagesimal, base 60
        first, *rest = text.split(":")
        return len(first) + len(rest) * math.log10(60)
    prefix = text[:2].lower()
    if prefix in _DIGITS_PER_CHARACTER:
        return (len(text) - 2) * _DIGITS_PER_CHARACTER[prefix]
    if text.startswith("0"):  # YAML 1.1 octal
        return len(text) * math.log10(8)
    return len(text)


class _Indexer:
    """Records the line of every key path; refuses aliases that contain themselves or multiply out,
    nesting too deep, and numbers too long to convert.

    ``index`` returns the size of a node with its aliases expanded (values, characters, whether an
    alias is in it), computed once per node, so counting a document that expands to a billion values
    takes as long as reading it.
    """

    # An alias re-uses a node; a few are handy, thousands are an attack ("billion laughs").
    MAX_ALIASES = 1000
    # Expanded, a document may hold this many values and characters: more than any recipe needs, and
    # few enough for everything that walks the values later.
    MAX_VALUES = 1_000_000
    MAX_CHARACTERS = 10_000_000
    # Recipes and specs nest a handful of levels; everything that walks them later recurses.
    MAX_DEPTH = 100

    def __init__(self, path: str, lines: dict[tuple[Key, ...], int]) -> None:
        self.path = path
        self.lines = lines
        self.sizes: dict[int, tuple[int, int, bool]] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()
        self.aliases = 0

    def _fail(self, node: yaml.Node, problem: str) -> YamlError:
        return YamlError(
            f"{Location(self.path, node.start_mark.line + 1)}: invalid YAML: {problem}"
        )

    def _check_conversion(self, node: yaml.ScalarNode) -> None:
        if node.tag in (_INT_TAG, _FLOAT_TAG) and _decimal_digits(node) > _MAX_DIGITS:
            raise self._fail(
                node, f"a number longer than {_MAX_DIGITS:,} digits (quote it to keep it as text)"
            )
        try:
            self.constructor.yaml_constructors[node.tag](self.constructor, node)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            text = str(node.value)
            shown = clipped(text, 43)
            kind = node.tag.rsplit(":", 1)[-1]
            raise self._fail(
                node, f"'{shown}' is not a valid {kind} (quote it to keep it as text)"
            ) from exc

    def index(
        self, node: yaml.Node, prefix: tuple[Key, ...], depth: int = 0
    ) -> tuple[int, int, bool]:
        """The line of every key path under ``node``, and its (values, characters, aliased) size
        as aliases would expand it; refuses what would be unsafe to construct."""
        self.lines.setdefault(prefix, node.start_mark.line + 1)
        if id(node) in self.open:
            raise YamlError(
                f"{Location(self.path, self.lines[prefix])}: invalid YAML: an alias refers to a value "
                "that contains it"
            )
        known = self.sizes.get(id(node))
        if known is not None:  # already indexed where it was first written: this is an alias
            self._count_alias(node, prefix)
            return known[0], known[1], True
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _CONVERTED_TAGS:
                self._check_conversion(node)
            size = (1, len(str(node.value)), False)
            self.sizes[id(node)] = size
            return size
        if depth >= self.MAX_DEPTH:
            raise self._fail(node, f"nested more than {self.MAX_DEPTH} levels deep")
        self.open.add(id(node))
        sizes = [self.index(child, keys, depth + 1) for child, keys in self._children(node, prefix)]
        self.open.discard(id(node))
        size = (1 + sum(s[0] for s in sizes), sum(s[1] for s in sizes), any(s[2] for s in sizes))
        self._check_expansion(node, size)
        self.sizes[id(node)] = size
        return size

    def _count_alias(self, node: yaml.Node, prefix: tuple[Key, ...]) -> None:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.aliases += 1
            if self.aliases > self.MAX_ALIASES:
                raise YamlError(
                    f"{Location(self.path, self.lines[prefix])}: invalid YAML: more than {self.MAX_ALIASES} aliases"
                )

    def _children(
        self, node: yaml.Node, prefix: tuple[Key, ...]
    ) -> list[tuple[yaml.Node, tuple[Key, ...]]]:
        """A list's items, or a mapping's keys and values, each with its key path; a key written
        twice is refused."""
        if not isinstance(node, yaml.MappingNode):
            return [(item, (*prefix, position)) for position, item in enumerate(node.value)]
        children: list[tuple[yaml.Node, tuple[Key, ...]]] = []
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            # A list or mapping as a key is refused when constructed; its text could be huge.
            key = (
                str(key_node.value)
                if isinstance(key_node, yaml.ScalarNode)
                else f"<key on line {line}>"
            )
            if key in first:
                raise YamlError(
                    f"{Location(self.path, line)}: duplicate key '{key}' (first on line {first[key]})"
                )
            first[key] = line
            self.lines[(*prefix, key)] = line
            children += [(key_node, (*prefix, key)), (value_node, (*prefix, key))]
        return children

    def _check_expansion(self, node: yaml.Node, size: tuple[int, int, bool]) -> None:
        values, characters, aliased = size
        if aliased and values > self.MAX_VALUES:
            raise self._fail(
                node, f"aliases expand this document to more than {self.MAX_VALUES:,} values"
            )
        if aliased and characters > self.MAX_CHARACTERS:
            raise self._fail(
                node,
                f"aliases expand this document to more than {self.MAX_CHARACTERS:,} characters",
            )


class _BlockDumper(yaml.SafeDumper):
    """Indents sequences under their key, the way people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:  # noqa: ARG002
        super().increase_indent(flow, False)


def dump_yaml(data: Any) -> str:
    """YAML text for ``data``: keys in the order given, block style, unicode kept, stable across runs."""
    return yaml.dump(
        data,
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
