from __future__ import annotations

import re
import textwrap
import time

import pytest

from lens.errors import SourcePos
from lens.scenario import yaml_nodes
from lens.scenario.yaml_nodes import Document, PathT, SourceMap, format_path, parse_yaml


def everywhere(data: object, path: PathT) -> bool:
    return True


def doc(text: str, env: dict[str, str] | None = None) -> Document:
    return parse_yaml(textwrap.dedent(text), "f.yaml", env or {}, everywhere)


def messages(d: Document) -> list[str]:
    return [str(p) for p in d.problems]


def test_format_path() -> None:
    assert format_path(("load", 1, "rate")) == "load[1].rate"
    assert format_path(("providers", "sim", "ttft")) == "providers.sim.ttft"
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == ""


def test_records_key_and_value_positions() -> None:
    d = doc(
        """\
        a: 1
        list:
          - x
          - {k: v}
        """
    )
    assert d.data == {"a": 1, "list": ["x", {"k": "v"}]}
    src = d.source
    assert src.value_pos(("a",)) == SourcePos("f.yaml", 1, 4)
    assert src.key_pos(("a",)) == SourcePos("f.yaml", 1, 1)
    assert src.value_pos(("list", 1)) == SourcePos("f.yaml", 4, 5)
    assert src.value_pos(("list", 1, "k")) == SourcePos("f.yaml", 4, 9)
    assert src.key_pos(("list", 1, "k")) == SourcePos("f.yaml", 4, 6)
    # A list item has no key: its own position.  An unknown path: the nearest ancestor.
    assert src.key_pos(("list", 0)) == SourcePos("f.yaml", 3, 5)
    assert src.value_pos(("list", 1, "missing", 3)) == SourcePos("f.yaml", 4, 5)
    assert src.value_pos(()) == SourcePos("f.yaml", 1, 1)


def test_empty_source_map_knows_nothing() -> None:
    assert SourceMap().value_pos(("a",)) is None
    assert SourceMap().key_pos(("a",)) is None
    assert SourceMap().env_variables(("a",)) == ()


def test_empty_document() -> None:
    d = doc("# only a comment\n")
    assert d.data is None
    assert d.problems == ()


def test_duplicate_keys_are_problems_at_the_second_key() -> None:
    d = doc(
        """\
        outer:
          a: 1
          b: 2
          a: 3
        """
    )
    assert messages(d) == [
        "f.yaml:4:3: outer.a: duplicate key 'a' (first at line 2, column 3); "
        "each key may appear only once"
    ]
    assert d.data == {"outer": {"a": 1, "b": 2}}
    assert ("outer", "a") in d.problem_paths


def test_merge_keys_expand_and_explicit_keys_win() -> None:
    d = doc(
        """\
        base: &base {ttft: 1s, itl: 2ms}
        more: &more {jitter: 0.1}
        one:
          <<: [*base, *more]
          ttft: 5s
        """
    )
    assert d.problems == ()
    assert d.data["one"] == {"ttft": "5s", "itl": "2ms", "jitter": 0.1}


def test_merge_of_a_scalar_is_a_problem() -> None:
    d = doc(
        """\
        one:
          <<: 5
          a: 1
        """
    )
    assert messages(d) == [
        "f.yaml:2:7: one: '<<' merges a mapping (or a list of mappings) that does not contain "
        "this one"
    ]


def test_recursive_alias_is_a_problem() -> None:
    d = doc("a: &x [1, *x]\n")
    assert "recursive YAML alias" in messages(d)[0]


def test_recursive_merge_is_a_problem() -> None:
    d = doc("a: &x {b: 1, <<: *x}\n")
    assert "'<<' merges a mapping" in messages(d)[0]


def test_alias_bomb_is_cut_short_at_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_nodes, "MAX_NODES", 50)
    d = doc(
        """\
        a: &a [x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a]
        c: [*b, *b, *b, *b, *b, *b, *b, *b]
        """
    )
    assert d.data is None
    (message,) = messages(d)
    # b's own aliases bring 8 * 9 values: the bomb goes off at one of them, on line 2.
    assert re.match(r"f\.yaml:2:\d+: the YAML alias '\*a' expands the document past 50 ", message)


def _laughs(levels: int, width: int) -> str:
    """The "billion laughs": each anchor repeats the one before ``width`` times."""
    lines = ["l0: &l0 [lol]"]
    for n in range(1, levels):
        refs = ", ".join([f"*l{n - 1}"] * width)
        lines.append(f"l{n}: &l{n} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_ends_fast_with_a_position() -> None:
    text = _laughs(10, 10)  # 10^9 values if expanded
    start = time.perf_counter()
    d = parse_yaml(text, "bomb.yaml", {})
    assert time.perf_counter() - start < 5  # a hang guard only
    (message,) = messages(d)
    # l0..l4 hold 23 456 values, each *l4 in l5 21 111 more: the fourth one tips it.
    assert message.startswith("bomb.yaml:6:25: the YAML alias '*l4' expands the document past")
    assert "alias or merge-key bomb" in message


def _merge_bomb(levels: int) -> str:
    """Nested merge keys (issue 10): each level merges the one before twice."""
    lines = ["a0: &a0 {k: v}"]
    lines += [f"a{n}: &a{n} {{<<: [*a{n - 1}, *a{n - 1}]}}" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_nested_merge_keys_are_resolved_once_per_mapping() -> None:
    text = _merge_bomb(40)
    assert len(text) < 1300  # the 1.2 KB file that never finished validating
    start = time.perf_counter()
    d = parse_yaml(text, "merge.yaml", {})
    assert time.perf_counter() - start < 5  # a hang guard only
    assert d.problems == ()
    assert d.data == {f"a{n}": {"k": "v"} for n in range(41)}
    assert d.source.value_pos(("a40", "k")) == SourcePos("merge.yaml", 1, 13)  # where k: v is


def test_merged_values_count_against_the_limit() -> None:
    # Each level merges the previous one and adds a key holding it: 2^n values at level n.
    lines = ["m0: &m0 {k: v}"]
    lines += [f"m{n}: &m{n} {{<<: *m{n - 1}, k{n}: *m{n - 1}}}" for n in range(1, 41)]
    start = time.perf_counter()
    d = parse_yaml("\n".join(lines) + "\n", "merge.yaml", {})
    assert time.perf_counter() - start < 5  # a hang guard only
    (message,) = messages(d)
    assert re.match(r"merge\.yaml:(\d+):(\d+): the YAML alias '\*m\d+' expands", message)
    line, col = map(int, message.split(":")[1:3])
    assert text_at(lines, line, col).startswith("*m")  # the position is an alias


def test_merge_limit_counts_overridden_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pairs a merge brings in count even when an explicit key overrides them.
    monkeypatch.setattr(yaml_nodes, "MAX_NODES", 30)
    text = "big: &big {a: 1, b: 2, c: 3, d: 4, e: 5}\nx: {<<: [*big, *big, *big, *big, *big]}\n"
    (message,) = messages(parse_yaml(text, "f.yaml", {}))
    assert message.startswith("f.yaml:2:")
    assert "'*big'" in message


def test_deep_aliases_are_cut_at_the_outermost_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_nodes, "MAX_DEPTH", 10)
    lines = ["d0: &d0 [x]"] + [f"d{n}: &d{n} [*d{n - 1}]" for n in range(1, 12)]
    (message,) = messages(parse_yaml("\n".join(lines) + "\n", "f.yaml", {}))
    assert message.startswith("f.yaml:10:10: nested more than 10 levels deep")
    assert "through YAML aliases" in message


def text_at(lines: list[str], line: int, col: int) -> str:
    return lines[line - 1][col - 1 :]


def test_non_scalar_keys_are_problems() -> None:
    d = doc("? [a, b]\n: 1\n")
    assert messages(d) == ["f.yaml:1:3: mapping keys must be plain strings"]


def test_keys_are_kept_as_written() -> None:
    assert doc("1: a\ntrue: b\nnull: c\n").data == {"1": "a", "true": "b", "null": "c"}


def test_scalar_types() -> None:
    d = doc("i: 3\nf: 1.5\nb: yes\nn: ~\ns: text\nd: 2024-01-01\nq: '3'\n")
    assert d.data == {
        "i": 3,
        "f": 1.5,
        "b": True,
        "n": None,
        "s": "text",
        "d": "2024-01-01",
        "q": "3",
    }


def test_unsupported_tags_are_problems() -> None:
    d = doc("a: !custom thing\nb: !!binary aGk=\n")
    assert [m.split(": ", 2)[:2] for m in messages(d)] == [["f.yaml:1:4", "a"], ["f.yaml:2:4", "b"]]
    assert "unsupported YAML tag '!custom'" in messages(d)[0]


def test_syntax_error_has_the_yaml_mark() -> None:
    d = doc("a: [1, 2\nb: 3\n")
    assert d.data is None
    (message,) = messages(d)
    assert message.startswith("f.yaml:2:2: invalid YAML: while parsing a flow sequence")


def test_tab_indentation_error() -> None:
    (message,) = messages(doc("a:\n\tb: 1\n"))
    assert message.startswith("f.yaml:2:1: invalid YAML:")


def test_several_documents_are_rejected() -> None:
    (message,) = messages(doc("a: 1\n---\nb: 2\n"))
    assert message.startswith("f.yaml:2:1: invalid YAML:")
    assert "single document" in message


def test_control_characters_are_reported_with_position() -> None:
    (message,) = messages(parse_yaml("a: 1\nb: x\x07\n", "f.yaml", {}))
    assert message.startswith("f.yaml:2:5: invalid YAML: special characters are not allowed")


# --- interpolation -------------------------------------------------------------------------

ENV = {"N": "8", "KEY": "sk-123", "FLAG": "false", "URL": "http://h:1"}


def test_plain_scalars_are_typed_after_interpolation() -> None:
    d = doc(
        """\
        n: ${N}
        quoted: "${N}"
        default: ${MISSING:-2.5}
        empty: ${MISSING:-}
        flag: ${FLAG}
        mixed: ${URL}/v1
        escaped: $$5
        """,
        ENV,
    )
    assert d.problems == ()
    assert d.data == {
        "n": 8,
        "quoted": "8",
        "default": 2.5,
        "empty": None,
        "flag": False,
        "mixed": "http://h:1/v1",
        "escaped": "$5",
    }


def test_variables_are_recorded_per_path() -> None:
    d = doc("p:\n  api_key: ${KEY}\n  other: x\n", ENV)
    assert d.source.env_variables(("p", "api_key")) == ("KEY",)
    assert d.source.env_variables(("p", "other")) == ()


def test_keys_are_not_interpolated() -> None:
    assert doc("${N}: 1\n", ENV).data == {"${N}": 1}


def test_unset_variable_points_at_its_dollar() -> None:
    d = doc("a:\n  b: http://${HOST}:${PORT:-80}/v1\n", ENV)
    assert messages(d) == [
        "f.yaml:2:13: a.b: environment variable HOST is not set "
        "(set it, or give a default: '${HOST:-default}')"
    ]
    assert ("a", "b") in d.problem_paths
    assert d.data == {"a": {"b": "http://${HOST}:${PORT:-80}/v1"}}  # kept as written


def test_position_inside_quoted_and_folded_scalars() -> None:
    d = doc(
        """\
        a: "x ${ONE} ${TWO}"
        b: >
          folded text
          then ${THREE}
        """,
        {"ONE": "1"},
    )
    assert [m.split(": ")[0] for m in messages(d)] == ["f.yaml:1:14", "f.yaml:4:8"]


def test_absurd_nesting_is_a_problem_not_a_crash() -> None:
    d = doc("a: " + "[" * 5000 + "]" * 5000 + "\n")
    # The root mapping is level 1 and the first '[' (column 4) level 2.
    assert messages(d) == [
        "f.yaml:1:103: nested more than 100 levels deep: too deep to be a scenario"
    ]


def test_a_huge_document_stops_while_composing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_nodes, "MAX_NODES", 100)
    text = "a:\n" + "".join(f"  - {i}\n" for i in range(500))
    (message,) = messages(parse_yaml(text, "f.yaml", {}))
    # The root mapping, its key, the list and 97 items: the 98th item tips it.
    assert (
        message
        == "f.yaml:99:5: the document has more than 100 values; a scenario has a few hundred"
    )
