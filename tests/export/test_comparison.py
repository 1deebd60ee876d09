"""Results read into the sides ``lens compare`` judges (lens.export.comparison.sides): the
summaries' counting rules, record by record."""

from __future__ import annotations

from lens.export.comparison import sides, value_text
from lens.metrics.request import itl_gaps
from tests.export._results import rich_results


def test_sides_count_as_the_summaries_do() -> None:
    results = rich_results()
    found = sides(results)
    assert set(found) == {("warm", "sim"), ("warm", "gpt")}  # no side for the warmup summary
    sim, gpt = found[("warm", "sim")], found[("warm", "gpt")]
    assert (sim.requests, sim.errors) == (3, 1)
    assert sim.values is not None
    assert gpt.values is not None
    # Latencies from successful requests only: the 5xx has none.
    assert sorted(v for (v,) in sim.values["ttft"]) == [190.0, 200.0]
    # ITL: each response's gaps kept together, as the summary computes them.
    ok = [r for r in results.records if r.provider == "sim" and r.status == "ok"]
    assert sim.values["itl"] == [itl_gaps(r.chunk_offsets, r.chunk_tokens) for r in ok]
    # The warmup request and the drained one count nowhere; cost of the measured ones.
    assert gpt.values["ttft"] == [[200.0], [200.0]]
    assert gpt.values["cost"] == [[0.0000042], [0.0000042]]
    assert "cost" not in sim.values  # unpriced: never 0
    assert sim.stats["ttft"].n == results.summary("warm", "sim").metrics["ttft"].n


def test_sides_without_records_keep_the_summaries_only() -> None:
    results = rich_results().model_copy(update={"records": ()})
    assert all(side.values is None for side in sides(results).values())


def test_values_in_their_units() -> None:
    assert value_text(812.5, "ms") == "812.5 ms"
    assert value_text(29.870973, "ms", sign=True) == "+29.87 ms"
    assert value_text(0.025, "ratio") == "2.5%"
    assert value_text(0.015, "ratio", sign=True) == "+1.5 pp"
    assert value_text(0.0000274, "usd") == "$0.0000274"
    assert value_text(-0.0000012, "usd", sign=True) == "-$0.0000012"
    assert value_text(41.25, "tokens/s") == "41.25 tokens/s"
    assert value_text(None, "ms") == "-"
