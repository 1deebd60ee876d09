"""YAML text -> plain Python data plus a map from each value's path to its line and column.

PyYAML's ``safe_load`` forgets where values came from, silently keeps the last of two
duplicate keys, and interpolation done after loading could no longer say where a bad
``${VAR}`` was.  So we compose the node tree (which still has marks) and convert it
ourselves: duplicate keys become problems, environment references are expanded where the
caller's policy allows (configuration fields, see env_scope.py) with their exact column, and
every key and value position is recorded under its path, e.g. ``("load", 1, "rate")``.
Validation later maps its error locations back through that map.

Hostile input ends with one positioned problem, never a hang or a traceback: aliases and merge
keys count every value they bring in against ``MAX_NODES`` (merge keys are resolved once per
mapping, not at every reference), and nesting is capped at ``MAX_DEPTH``.

Typing rule for interpolation: a *plain* (unquoted) scalar that contained ``${...}`` is typed
after expansion, exactly as YAML would have typed the expanded text (``requests: ${N:-8}``
gives the integer 8, ``${KEY:-}`` gives null).  Quote the scalar to keep a string.
Interpolation applies to values, not to mapping keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
# has a few hundred nodes.  Merge keys count too: each pair a merge brings in is one value.
MAX_NODES = 100_000
# A real scenario nests under ten levels; this stops a deep file (or a chain of aliases)
# with a position, well before Python's recursion limit.
MAX_DEPTH = 100
# Whether ``${VAR}`` is expanded at a path of the document as written (see env_scope.py).
EnvPolicy = Callable[[Any, PathT], bool]


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


class _LimitError(Exception):
    """The document is too large or too deep to be a scenario; carries where it tipped."""

    def __init__(self, message: str, pos: SourcePos | None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class _Alias:
    """Where ``*name`` was written: PyYAML's composer hands back the anchored node itself."""

    mark: yaml.Mark
    anchor: str


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers where each alias was written and refuses deep nesting
    before Python's recursion limit does (with a position instead of a traceback)."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file = file
        self.aliases: dict[tuple[int, int], _Alias] = {}  # (parent id, index or key id)
        self.depth = 0
        self.composed = 0  # nodes written out (aliases are counted when converted)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if parent is not None and index is not None:
                slot = index if isinstance(index, int) else id(index)
                anchor = str(getattr(event, "anchor", ""))
                self.aliases[(id(parent), slot)] = _Alias(event.start_mark, anchor)
            return super().compose_node(parent, index)
        self.composed += 1
        if self.depth >= MAX_DEPTH or self.composed > MAX_NODES:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            pos = SourcePos(self.file, mark.line + 1, mark.column + 1)
            if self.depth >= MAX_DEPTH:
                raise _LimitError(_too_deep(), pos)
            raise _LimitError(_too_many(), pos)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _too_many() -> str:
    return f"the document has more than {MAX_NODES} values; a scenario has a few hundred"


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep: too deep to be a scenario"


# Key -> (key node, value node, the mapping that wrote the pair).
_Pairs = dict[str, tuple[ScalarNode, Node, MappingNode]]


class _Converter:
    def __init__(self, loader: _Loader, text: str, file: str, env: Mapping[str, str]):
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
        self.via: list[_Alias] = []  # aliases being expanded, outermost first
        # Merge keys are resolved once per mapping node: re-resolving them at every
        # reference made nested merges exponential.
        self.inherited_memo: dict[int, _Pairs] = {}
        self.view_memo: dict[int, _Pairs] = {}
        self.building: set[int] = set()
        self.pending: list[tuple[PathT, ScalarNode]] = []  # strings holding a '$'

    def pos(self, mark: yaml.Mark) -> SourcePos:
        return SourcePos(self.file, mark.line + 1, mark.column + 1)

    def report(self, path: PathT, message: str, pos: SourcePos | None) -> None:
        self.problems.append(Problem(message, pos=pos, path=format_path(path)))
        self.problem_paths.add(path)

    def alias_at(self, parent: Node, index: int | Node) -> _Alias | None:
        slot = index if isinstance(index, int) else id(index)
        return self.loader.aliases.get((id(parent), slot))

    def tick(self, node: Node) -> None:
        """Count one value against ``MAX_NODES``; past it, stop at the outermost alias."""
        self.count += 1
        if self.count <= MAX_NODES:
            return
        if self.via:
            alias = self.via[0]
            raise _LimitError(
                f"the YAML alias '*{alias.anchor}' expands the document past {MAX_NODES} "
                "values (an alias or merge-key bomb?); a scenario has a few hundred",
                self.pos(alias.mark),
            )
        raise _LimitError(_too_many(), self.pos(node.start_mark))

    def convert(self, node: Node, path: PathT, via: _Alias | None = None) -> Any:
        if via is not None:
            self.via.append(via)
        try:
            return self._convert(node, path)
        finally:
            if via is not None:
                self.via.pop()

    def _convert(self, node: Node, path: PathT) -> Any:
        self.tick(node)
        if len(path) > MAX_DEPTH:  # only aliases nest deeper than the composer allows
            alias = self.via[0] if self.via else None
            mark = alias.mark if alias is not None else node.start_mark
            raise _LimitError(_too_deep() + " (through YAML aliases)", self.pos(mark))
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
                items.append(self.convert(item, (*path, i), self.alias_at(node, i)))
            return items
        finally:
            self.active.discard(id(node))

    def inherited(self, node: MappingNode, path: PathT) -> _Pairs:
        """The pairs ``node`` takes from its merge keys (``<<: *anchor``), in YAML's order:
        the first source to give a key wins; explicit keys override them all (``mapping``)."""
        memo = self.inherited_memo.get(id(node))
        if memo is not None:
            return memo
        self.building.add(id(node))
        result: _Pairs = {}
        try:
            for merge_key, merge in node.value:
                if merge_key.tag != _MERGE:
                    continue
                if isinstance(merge, SequenceNode):
                    sources = [(s, self.alias_at(merge, i)) for i, s in enumerate(merge.value)]
                else:
                    sources = [(merge, self.alias_at(node, merge_key))]
                for source, alias in sources:
                    if (
                        not isinstance(source, MappingNode)
                        or id(source) in self.active
                        or id(source) in self.building
                    ):
                        self.report(
                            path,
                            "'<<' merges a mapping (or a list of mappings) that does not "
                            "contain this one",
                            self.pos(source.start_mark),
                        )
                        continue
                    if alias is not None:
                        self.via.append(alias)
                    try:
                        for key, entry in self.view(source, path).items():
                            self.tick(source)
                            result.setdefault(key, entry)
                    finally:
                        if alias is not None:
                            self.via.pop()
        finally:
            self.building.discard(id(node))
        self.inherited_memo[id(node)] = result
        return result

    def view(self, node: MappingNode, path: PathT) -> _Pairs:
        """Every pair of ``node`` once merges are applied: what merging it brings in."""
        memo = self.view_memo.get(id(node))
        if memo is not None:
            return memo
        result: _Pairs = {}
        for key, value in node.value:
            if key.tag != _MERGE and isinstance(key, ScalarNode):
                result.setdefault(str(key.value), (key, value, node))
        for key_text, entry in self.inherited(node, path).items():
            result.setdefault(key_text, entry)
        self.view_memo[id(node)] = result
        return result

    def mapping(self, node: MappingNode, path: PathT) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, yaml.Mark] = {}
        pairs: list[tuple[Node, Node, MappingNode, bool]] = [
            (k, v, node, True) for k, v in node.value if k.tag != _MERGE
        ]
        pairs += [(k, v, owner, False) for k, v, owner in self.inherited(node, path).values()]
        for key_node, value_node, owner, explicit in pairs:
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
            alias = self.alias_at(owner, key_node)
            result[key] = self.convert(value_node, (*path, key), alias)
        return result

    def scalar(self, node: ScalarNode, path: PathT) -> Any:
        if node.tag == _STR:
            if "$" in node.value:
                self.pending.append((path, node))
            return str(node.value)
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

    def expand(self, node: ScalarNode, path: PathT) -> Any:
        """The string at ``path`` with ``${VAR}`` expanded (see the module's typing rule)."""
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


def _replace(data: Any, path: PathT, value: Any) -> Any:
    """``data`` with the value at ``path`` replaced (in place below the root)."""
    if not path:
        return value
    parent = data
    for seg in path[:-1]:
        parent = parent[seg]
    parent[path[-1]] = value
    return data


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


def parse_yaml(
    text: str, file: str, env: Mapping[str, str], expand: EnvPolicy | None = None
) -> Document:
    """Compose and convert one YAML document; never raises for bad input.

    ``${VAR}`` is expanded only in the strings for which ``expand(data, path)`` says so
    (``data``: the document as written, so a switch in it can widen the scope); elsewhere it
    stays literal text.  Without ``expand`` nothing is expanded.
    """
    empty = SourceMap(file)
    try:
        loader = _Loader(text, file)  # checks for unprintable characters: may raise
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
        if expand is not None:
            for path, node in converter.pending:
                if expand(data, path):
                    data = _replace(data, path, converter.expand(node, path))
    except _LimitError as exc:
        return Document(None, empty, (Problem(exc.message, pos=exc.pos),), frozenset())
    except RecursionError:  # a lowered recursion limit: the explicit depth limit is first
        problem = Problem("the document is nested too deeply to be a scenario")
        return Document(None, empty, (problem,), frozenset())
    except yaml.YAMLError as exc:
        return Document(None, empty, (_yaml_error_problem(exc, file, text),), frozenset())
    finally:
        loader.dispose()
    source = SourceMap(file, converter.nodes, converter.variables)
    return Document(data, source, tuple(converter.problems), frozenset(converter.problem_paths))
