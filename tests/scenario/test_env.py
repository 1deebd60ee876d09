from __future__ import annotations

import pytest

from lens.scenario.env import interpolate

ENV = {"HOST": "gpu1", "EMPTY": "", "PORT": "8000"}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("plain", "plain"),
        ("${HOST}", "gpu1"),
        ("http://${HOST}:${PORT}/v1", "http://gpu1:8000/v1"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # ':-' also replaces an empty value, like the shell
        ("${EMPTY}", ""),
        ("${MISSING:-}", ""),
        ("${HOST:-other}", "gpu1"),
        ("cost $$5", "cost $5"),
        ("$$${HOST}", "$gpu1"),
        ("a $ b", "a $ b"),
        ("$5 and $x", "$5 and $x"),
        ("trailing $", "trailing $"),
    ],
)
def test_interpolation(text: str, value: str) -> None:
    result = interpolate(text, ENV)
    assert result.problems == ()
    assert result.value == value


def test_records_variables_in_order() -> None:
    result = interpolate("${HOST}-${MISSING:-x}-${PORT}", ENV)
    assert result.variables == ("HOST", "MISSING", "PORT")
    assert result.changed


def test_unchanged_text_is_reported_as_such() -> None:
    assert not interpolate("no dollars", ENV).changed
    assert not interpolate("a $ b", ENV).changed
    assert interpolate("$$", ENV).changed


def test_unset_variable_is_a_problem_at_its_dollar() -> None:
    result = interpolate("key=${NOPE}", ENV)
    (problem,) = result.problems
    assert problem.offset == 4
    assert problem.variable == "NOPE"
    assert "environment variable NOPE is not set" in problem.message
    assert "${NOPE:-default}" in problem.message


def test_every_unset_variable_is_reported() -> None:
    result = interpolate("${A} ${B}", ENV)
    assert [p.offset for p in result.problems] == [0, 5]


def test_unterminated_reference() -> None:
    (problem,) = interpolate("x ${HOST", ENV).problems
    assert problem.offset == 2
    assert "unterminated" in problem.message


@pytest.mark.parametrize("body", ["1X", "", "A-B", "A B"])
def test_invalid_variable_names(body: str) -> None:
    (problem,) = interpolate(f"${{{body}}}", ENV).problems
    assert "invalid variable name" in problem.message
    assert problem.offset == 0
