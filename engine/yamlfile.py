"""Read YAML with the safe loader, keeping the line of every key and item; write YAML deterministically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Location, YamlError

__all__ = ["LocatedYaml", "atomic_write_text", "dump_yaml", "load_yaml", "parse_yaml"]

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
        keys = tuple(keys)
        while keys:
            if keys in self.lines:
                return self.lines[keys]
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
        raise YamlError(f"{Location(path, line)}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{path}: invalid YAML: {exc}") from exc
    if node is None:
        return LocatedYaml(path, None, {(): 1})
    lines: dict[tuple[Key, ...], int] = {}
    _index(node, (), lines, path)
    try:
        data = yaml.constructor.SafeConstructor().construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise YamlError(f"{Location(path, line)}: invalid YAML: {exc.problem}") from exc
    return LocatedYaml(path, data, lines)


def _index(
    node: yaml.Node, prefix: tuple[Key, ...], lines: dict[tuple[Key, ...], int], path: str
) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlError(
                    f"{Location(path, line)}: duplicate key '{key}' (first on line {seen[key]})"
                )
            seen[key] = line
            lines[(*prefix, key)] = line
            _index(value_node, (*prefix, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*prefix, index), lines, path)


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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader never sees half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
