"""YAML that remembers where every value came from.

PyYAML's ``safe_load`` forgets positions, so a validation error could only say *what* is wrong,
not *where*. Here documents are composed into nodes and built by hand: the plain Python value
comes out together with a map from every node path (``("slos", 1, "objective")``) to the line
and column of its key (mapping entries) or of the item itself (sequence items, the root).
Anything that reads user YAML and reports errors (SLO files, settings) goes through here.

Beyond ``safe_load``: a key given twice in one mapping is a problem (PyYAML silently keeps the
last one, which hides typos); merge keys (``<<: *defaults``) and anchors work as usual.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slo.errors import InvalidSpec, Position, Problem

NodePath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: NodePath) -> str:
    """``("slos", 1, "objective")`` → ``slos[1].objective``; the root is ``(document)``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file: its plain value and where each of its nodes starts."""

    file: str
    index: int  # 0-based position among the documents of the file
    data: Any
    positions: Mapping[NodePath, Position]

    def position(self, path: NodePath) -> Position:
        """Where ``path`` is, or its nearest ancestor that exists (a missing field's parent)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def problem(self, path: NodePath, message: str) -> Problem:
        return Problem(self.position(path), format_path(path), message)


def load_file(path: str | Path) -> tuple[Document, ...]:
    """Every non-empty document of a YAML file; raises ``InvalidSpec`` on any problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidSpec(
            [Problem(Position(name, 1, 1), "(file)", f"cannot read: {reason}")]
        ) from exc
    return load_text(text, name)


def load_text(text: str, file: str = "<string>") -> tuple[Document, ...]:
    """Like ``load_file`` for text already in memory; ``file`` names it in positions."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        problem = Problem(Position(file, line, column), "(syntax)", f"invalid YAML: {message}")
        raise InvalidSpec([problem]) from exc
    except yaml.YAMLError as exc:
        problem = Problem(Position(file, 1, 1), "(syntax)", f"invalid YAML: {exc}")
        raise InvalidSpec([problem]) from exc

    documents: list[Document] = []
    problems: list[Problem] = []
    for node in nodes:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            continue  # an empty document (a trailing `---`) holds nothing to load
        builder = _Builder(file)
        data = builder.build(node, ())
        problems.extend(builder.problems)
        documents.append(Document(file, len(documents), data, builder.positions))
    if problems:
        raise InvalidSpec(problems)
    return tuple(documents)


class _Builder:
    """Turns one composed node tree into plain values, recording positions as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[NodePath, Position] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")

    def _at(self, node: yaml.Node) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: NodePath, anchor: yaml.Node | None = None) -> Any:
        self.positions.setdefault(path, self._at(anchor or node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: NodePath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        seen: set[Any] = set()
        for key_node, value_node in self._entries(node):
            key = self._scalars.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                self.problems.append(
                    Problem(self._at(key_node), format_path(path), "mapping keys must be scalars")
                )
                continue
            name = str(key) if not isinstance(key, str) else key
            child: NodePath = (*path, name)
            if name in seen:
                self.problems.append(
                    Problem(
                        self._at(key_node), format_path(child), "key given twice in one mapping"
                    )
                )
                continue
            seen.add(name)
            result[name] = self.build(value_node, child, anchor=key_node)
        return result

    def _entries(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """The mapping's own entries, with ``<<`` merges expanded (own keys win, as in YAML)."""
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        own_keys = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        yield from own
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if key.tag != _MERGE_TAG:
                continue
            merged.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
        for source in merged:
            if not isinstance(source, yaml.MappingNode):
                self.problems.append(
                    Problem(self._at(source), "(merge)", "`<<` must merge a mapping")
                )
                continue
            for key, value in self._entries(source):
                if isinstance(key, yaml.ScalarNode) and key.value in own_keys:
                    continue
                own_keys.add(key.value)
                yield key, value
