from __future__ import annotations

import textwrap

import pytest

from lens.errors import SourcePos
from lens.scenario import yaml_nodes
from lens.scenario.yaml_nodes import Document, SourceMap, format_path, parse_yaml


def doc(text: str, env: dict[str, str] | None = None) -> Document:
    return parse_yaml(textwrap.dedent(text), "f.yaml", env or {})


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


def test_alias_bomb_is_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_nodes, "MAX_NODES", 50)
    d = doc(
        """\
        a: &a [x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a]
        c: [*b, *b, *b, *b, *b, *b, *b, *b]
        """
    )
    assert d.data is None
    assert "expands to more than 50 values" in messages(d)[0]


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
    assert messages(d) == ["the document is nested too deeply to be a scenario"]
