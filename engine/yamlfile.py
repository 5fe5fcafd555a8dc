"""Read YAML with the safe loader, keeping the line of every key and item; write YAML deterministically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Location, YamlError

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
    return LocatedYaml(path, data, lines)


class _Indexer:
    """Records the line of every key path; refuses aliases that contain themselves or multiply out."""

    # An alias re-uses a node; a few are handy, thousands are an attack ("billion laughs").
    MAX_ALIASES = 1000

    def __init__(self, path: str, lines: dict[tuple[Key, ...], int]) -> None:
        self.path = path
        self.lines = lines
        self.seen: set[int] = set()
        self.open: set[int] = set()
        self.aliases = 0

    def index(self, node: yaml.Node, prefix: tuple[Key, ...]) -> None:
        self.lines.setdefault(prefix, node.start_mark.line + 1)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return
        if id(node) in self.open:
            raise YamlError(
                f"{Location(self.path, self.lines[prefix])}: invalid YAML: an alias refers to a value "
                "that contains it"
            )
        if id(node) in self.seen:
            self.aliases += 1
            if self.aliases > self.MAX_ALIASES:
                raise YamlError(
                    f"{Location(self.path, self.lines[prefix])}: invalid YAML: more than {self.MAX_ALIASES} aliases"
                )
            return  # already indexed where it was first written
        self.seen.add(id(node))
        self.open.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise YamlError(
                        f"{Location(self.path, line)}: duplicate key '{key}' (first on line {first[key]})"
                    )
                first[key] = line
                self.lines[(*prefix, key)] = line
                self.index(value_node, (*prefix, key))
        else:
            for position, item in enumerate(node.value):
                self.index(item, (*prefix, position))
        self.open.discard(id(node))


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
