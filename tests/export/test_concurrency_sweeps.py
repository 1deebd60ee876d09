"""find_max_concurrency in every output that says what a sweep found: results JSON, the run
table (console and markdown), Prometheus and InfluxDB."""

from __future__ import annotations

import json

import jsonschema

from lens.export.influx import points
from lens.export.prometheus import escape_label_value, exposition
from lens.export.results import Results, results_json_schema, sweep_out
from lens.export.table import render
from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe
from tests.export._results import SCENARIO_NAME, rich_results
from tests.export.lineparse import parse
from tests.export.test_prometheus import samples


def probe(c: int, held: bool) -> SweepProbe:
    return SweepProbe(f"conc.c{c}", None, c, held, rps=78.0, detail=f"ttft.p95 at c{c}")


FOUND = SweepOutcome(
    "conc",
    "gpt",
    "find_max_concurrency",
    "4 in flight meets ttft.p95 < 50ms: bracket down to neighbours",
    (probe(1, True), probe(16, False), probe(8, False), probe(4, True), probe(6, False)),
    max_concurrency=4,
    bracket=(4, 5),
)
NONE_PASSED = SweepOutcome(
    "conc",
    "sim",
    "find_max_concurrency",
    "even the lowest concurrency, 5 in flight, fails: the bracket is open below",
    (probe(5, False),),
    bracket=(None, 5),
)


def with_sweeps(*outcomes: SweepOutcome, overloaded: bool = False) -> Results:
    return rich_results(overloaded=overloaded).model_copy(
        update={"sweeps": tuple(sweep_out(o) for o in outcomes)}
    )


def test_results_carry_the_max_concurrency_and_an_integer_bracket() -> None:
    results = with_sweeps(FOUND, NONE_PASSED)
    doc = json.loads(results.model_dump_json())
    jsonschema.validate(doc, results_json_schema())
    found, none = doc["sweeps"]
    assert (found["kind"], found["max_concurrency"], found["bracket"]) == (
        "find_max_concurrency",
        4,
        [4, 5],
    )
    assert found["max_rate_per_s"] is None
    assert (none["max_concurrency"], none["bracket"]) == (None, [None, 5])
    # Read back, the bracket is still whole numbers.
    assert Results.model_validate(doc).sweeps[0].bracket == (4, 5)


def test_the_table_says_what_the_concurrency_search_found() -> None:
    for fmt in ("simple", "github"):
        lines = render(with_sweeps(FOUND, NONE_PASSED), fmt).splitlines()
        assert (
            "  conc/gpt (find_max_concurrency): max concurrency 4, bracket [4, 5) in flight, "
            "5 steps"
        ) in lines
        assert "    4 in flight meets ttft.p95 < 50ms: bracket down to neighbours" in lines
        assert "    pass conc.c4: ttft.p95 at c4" in lines
        assert "    fail conc.c6: ttft.p95 at c6" in lines
        assert (
            "  conc/sim (find_max_concurrency): no concurrency passed, bracket [open, 5) in "
            "flight, 1 steps"
        ) in lines


def test_prometheus_has_the_max_concurrency_only_when_trusted() -> None:
    scenario = f'scenario="{escape_label_value(SCENARIO_NAME)}"'
    gpt = f'{scenario},sweep="conc",provider="gpt",model="gpt-4o-mini"'
    text = exposition(with_sweeps(FOUND, NONE_PASSED))
    assert "# TYPE lens_sweep_max_concurrency gauge" in text
    values = samples(text)
    found = [k for k in values if k.startswith("lens_sweep_max_concurrency")]
    assert found == [f"lens_sweep_max_concurrency{{{gpt}}}"]  # sim: none passed, absent
    assert values[found[0]] == 4
    assert not any(k.startswith("lens_sweep_max_rate") for k in values)
    results = with_sweeps(FOUND)
    flagged = results.model_copy(
        update={"sweeps": [results.sweeps[0].model_copy(update={"distrusted": True})]}
    )
    text = exposition(flagged)
    assert "lens_sweep_max_concurrency{" not in text
    assert f"lens_sweep_distrusted{{{gpt}}} 1" in text


def test_influx_writes_the_max_concurrency_and_float_brackets() -> None:
    parsed = [parse(p) for p in points(with_sweeps(FOUND, NONE_PASSED))]
    found, none = [p for p in parsed if p.measurement == "lens_sweep"]
    assert found.tags["kind"] == "find_max_concurrency"
    assert found.fields["max_concurrency"] == 4
    assert isinstance(found.fields["max_concurrency"], int)
    # One type per field across kinds: a rate search writes floats, so this one does too.
    assert (found.fields["bracket_passing"], found.fields["bracket_failing"]) == (4.0, 5.0)
    assert isinstance(found.fields["bracket_passing"], float)
    assert "max_rate_per_s" not in found.fields
    assert "max_concurrency" not in none.fields
    assert "bracket_passing" not in none.fields
    assert none.fields["bracket_failing"] == 5.0
