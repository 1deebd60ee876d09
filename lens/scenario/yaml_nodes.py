"""YAML text -> plain Python data plus a map from each value's path to its line and column.

PyYAML's ``safe_load`` forgets where values came from, silently keeps the last of two
duplicate keys, and interpolation done after loading could no longer say where a bad
``${VAR}`` was.  So we compose the node tree (which still has marks) and convert it
ourselves: duplicate keys become problems, environment references are expanded in place with
their exact column, and every key and value position is recorded under its path, e.g.
``("load", 1, "rate")``.  Validation later maps its error locations back through that map.

Typing rule for interpolation: a *plain* (unquoted) scalar that contained ``${...}`` is typed
after expansion, exactly as YAML would have typed the expanded text (``requests: ${N:-8}``
gives the integer 8, ``${KEY:-}`` gives null).  Quote the scalar to keep a string.
Interpolation applies to values, not to mapping keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lens.errors import Problem, SourcePos
from lens.scenario.env import interpolate

PathT = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_STR, _MERGE, _TIMESTAMP = f"{_TAG}str", f"{_TAG}merge", f"{_TAG}timestamp"
_NATIVE_TAGS = frozenset(f"{_TAG}{t}" for t in ("int", "float", "bool", "null"))
# Alias expansion can grow a small file exponentially ("billion laughs"); a real scenario
# has a few hundred nodes.
MAX_NODES = 100_000


def format_path(path: PathT) -> str:
    """``("load", 1, "rate")`` -> ``load[1].rate``: the spelling used in every message."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out


@dataclass(frozen=True, slots=True)
class NodePos:
    """1-based position of a value, and of its key when the value sits in a mapping."""

    line: int
    col: int
    key_line: int = 0
    key_col: int = 0


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each path of a scenario was written; an empty map answers ``None`` everywhere."""

    file: str = ""
    nodes: Mapping[PathT, NodePos] = field(default_factory=dict)
    variables: Mapping[PathT, tuple[str, ...]] = field(default_factory=dict)

    def value_pos(self, path: PathT) -> SourcePos | None:
        """Position of the value at ``path``, or of its nearest recorded ancestor."""
        for end in range(len(path), -1, -1):
            node = self.nodes.get(path[:end])
            if node is not None:
                return SourcePos(self.file, node.line, node.col)
        return None

    def key_pos(self, path: PathT) -> SourcePos | None:
        """Position of the mapping key naming ``path`` (falls back to the value)."""
        node = self.nodes.get(path)
        if node is not None and node.key_line:
            return SourcePos(self.file, node.key_line, node.key_col)
        return self.value_pos(path)

    def env_variables(self, path: PathT) -> tuple[str, ...]:
        """Names of the environment variables the string at ``path`` was built from."""
        return self.variables.get(path, ())


@dataclass(frozen=True, slots=True)
class Document:
    data: Any
    source: SourceMap
    problems: tuple[Problem, ...]
    problem_paths: frozenset[PathT]  # paths already reported, so validation skips them


class _TooLarge(Exception):
    pass


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, text: str, file: str, env: Mapping[str, str]):
        self.loader = loader
        self.text = text
        self.file = file
        self.env = env
        self.nodes: dict[PathT, NodePos] = {}
        self.variables: dict[PathT, tuple[str, ...]] = {}
        self.problems: list[Problem] = []
        self.problem_paths: set[PathT] = set()
        self.active: set[int] = set()  # ids of collections being converted: alias cycles
        self.count = 0

    def pos(self, mark: yaml.Mark) -> SourcePos:
        return SourcePos(self.file, mark.line + 1, mark.column + 1)

    def report(self, path: PathT, message: str, pos: SourcePos | None) -> None:
        self.problems.append(Problem(message, pos=pos, path=format_path(path)))
        self.problem_paths.add(path)

    def convert(self, node: Node, path: PathT) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.report(path, "recursive YAML alias: a value cannot contain itself", None)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            assert isinstance(node, SequenceNode)
            items = []
            for i, item in enumerate(node.value):
                m = item.start_mark
                self.nodes[(*path, i)] = NodePos(m.line + 1, m.column + 1)
                items.append(self.convert(item, (*path, i)))
            return items
        finally:
            self.active.discard(id(node))

    def pairs(self, node: MappingNode, path: PathT) -> Iterator[tuple[Node, Node, bool]]:
        """Key/value pairs with YAML merge keys (``<<: *anchor``) expanded after explicit ones.

        The flag says whether the pair was written here (duplicates there are errors) or
        merged in (explicit keys override merged ones, as YAML specifies).
        """
        merges: list[Node] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                merges.append(value)
            else:
                yield key, value, True
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in self.active:
                    self.report(
                        path,
                        "'<<' merges a mapping (or a list of mappings) that does not contain "
                        "this one",
                        self.pos(source.start_mark),
                    )
                    continue
                self.active.add(id(source))
                try:
                    for key, value, _ in self.pairs(source, path):
                        yield key, value, False
                finally:
                    self.active.discard(id(source))

    def mapping(self, node: MappingNode, path: PathT) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, yaml.Mark] = {}
        for key_node, value_node, explicit in self.pairs(node, path):
            if not isinstance(key_node, ScalarNode):
                self.report(
                    path, "mapping keys must be plain strings", self.pos(key_node.start_mark)
                )
                continue
            key = str(key_node.value)
            if key in first:
                if explicit:
                    seen = first[key]
                    self.report(
                        (*path, key),
                        f"duplicate key {key!r} (first at line {seen.line + 1}, column "
                        f"{seen.column + 1}); each key may appear only once",
                        self.pos(key_node.start_mark),
                    )
                continue
            first[key] = key_node.start_mark
            km, vm = key_node.start_mark, value_node.start_mark
            self.nodes[(*path, key)] = NodePos(
                vm.line + 1, vm.column + 1, km.line + 1, km.column + 1
            )
            result[key] = self.convert(value_node, (*path, key))
        return result

    def scalar(self, node: ScalarNode, path: PathT) -> Any:
        if node.tag == _STR:
            return self.string(node, path)
        if node.tag in _NATIVE_TAGS:
            return self.loader.construct_object(node)
        if node.tag == _TIMESTAMP:
            return str(node.value)  # a date is just text to lens (a name, a description)
        self.report(
            path,
            f"unsupported YAML tag {node.tag!r}: scenarios use plain strings, numbers, "
            "booleans, lists and mappings",
            self.pos(node.start_mark),
        )
        return str(node.value)

    def string(self, node: ScalarNode, path: PathT) -> Any:
        text = str(node.value)
        result = interpolate(text, self.env)
        if result.variables:
            self.variables[path] = result.variables
        for problem in result.problems:
            self.report(path, problem.message, self.offset_pos(node, text, problem.offset))
        if result.problems:
            return text
        if result.changed and node.style is None:
            tag = self.loader.resolve(ScalarNode, result.value, (True, False))  # type: ignore[no-untyped-call]
            if tag in _NATIVE_TAGS:
                typed = ScalarNode(tag, result.value, node.start_mark, node.end_mark)
                return self.loader.construct_object(typed)
        return result.value

    def offset_pos(self, node: ScalarNode, value: str, offset: int) -> SourcePos:
        """Position of the ``${`` at ``offset`` in the scalar's value, found in the raw text.

        Quoting and line folding change offsets but never the ``${`` themselves, so the n-th
        ``${`` of the value is the n-th ``${`` of the raw source slice.
        """
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.text[start:end]
        index = -1
        for _ in range(value.count("${", 0, offset) + 1):
            index = raw.find("${", index + 1)
            if index < 0:
                return self.pos(node.start_mark)
        return _index_pos(self.text, start + index, self.file)


def _index_pos(text: str, index: int, file: str) -> SourcePos:
    line = text.count("\n", 0, index) + 1
    return SourcePos(file, line, index - (text.rfind("\n", 0, index) + 1) + 1)


def _yaml_error_problem(exc: yaml.YAMLError, file: str, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = exc.problem or "syntax error"
        if exc.context:
            what = f"{exc.context}, {what}"
        return Problem(f"invalid YAML: {what}", pos=SourcePos(file, mark.line + 1, mark.column + 1))
    if isinstance(exc, yaml.reader.ReaderError):
        return Problem(
            f"invalid YAML: {exc.reason} (character U+{exc.character:04X})",
            pos=_index_pos(text, exc.position, file),
        )
    return Problem(f"invalid YAML: {exc}")  # pragma: no cover - PyYAML raises only the above


def parse_yaml(text: str, file: str, env: Mapping[str, str]) -> Document:
    """Compose and convert one YAML document; never raises for bad input."""
    empty = SourceMap(file)
    try:
        loader = yaml.SafeLoader(text)  # checks for unprintable characters: may raise
    except yaml.YAMLError as exc:
        return Document(None, empty, (_yaml_error_problem(exc, file, text),), frozenset())
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(None, empty, (), frozenset())
        converter = _Converter(loader, text, file, env)
        m = root.start_mark
        converter.nodes[()] = NodePos(m.line + 1, m.column + 1)
        data = converter.convert(root, ())
    except _TooLarge:
        problem = Problem(f"the document expands to more than {MAX_NODES} values (YAML aliases?)")
        return Document(None, empty, (problem,), frozenset())
    except RecursionError:  # PyYAML's composer and our walk both recurse per nesting level
        problem = Problem("the document is nested too deeply to be a scenario")
        return Document(None, empty, (problem,), frozenset())
    except yaml.YAMLError as exc:
        return Document(None, empty, (_yaml_error_problem(exc, file, text),), frozenset())
    finally:
        loader.dispose()
    source = SourceMap(file, converter.nodes, converter.variables)
    return Document(data, source, tuple(converter.problems), frozenset(converter.problem_paths))
