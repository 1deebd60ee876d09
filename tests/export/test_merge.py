"""lens merge: the shards of one run (real runs on the simulator) merged into one exact run,
and every way shards can fail to make one whole refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import lens
from lens.cli import main
from lens.errors import ResultsError
from lens.export.merge import record_from_out
from lens.export.results import Results
from lens.metrics.request import itl_values, request_metrics
from lens.metrics.sketch import MetricSketch
from lens.metrics.summary import MetricStats
from lens.pipeline import run_plan
from lens.plan.compile import compile_plan
from lens.plan.split import Shard, plan_hash
from lens.scenario import parse_scenario

SCENARIO = """\
version: 1
name: shards
providers:
  sim:
    type: simulated
    ttft: 20ms
    itl: 3ms
    output_tokens: 4
    jitter: 0.3
    price: {input: 1, output: 2}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: rate, pattern: constant-rate, rate: 100/s, requests: 31, warmup: 2 requests}
  - {id: conc, pattern: concurrency, concurrency: 4, requests: 14}
sla:
  - ttft.p50 < 5s
  - {assert: "error_rate < 1%", stage: rate}
"""
COUNT = 3


@pytest.fixture(scope="module")
def shards() -> list[Results]:
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    return [
        run_plan(plan, shard=Shard(k, COUNT), handle_signals=False).results for k in range(COUNT)
    ]


@pytest.fixture(scope="module")
def merged(shards: list[Results]) -> Results:
    return lens.merge(shards)


def test_every_planned_request_once(merged: Results) -> None:
    rate = [r for r in merged.records if r.stage == "rate"]
    assert sorted(r.index for r in rate) == list(range(31))
    assert all(r.shard == r.index % COUNT for r in rate)  # in the shard that owns it
    conc = [r for r in merged.records if r.stage == "conc"]
    assert len(conc) == 14
    assert {r.shard for r in conc} == {0, 1, 2}
    assert [(w.stage, w.planned, w.started) for w in merged.stages] == [
        ("rate", 31, 31),
        ("conc", 14, 14),
    ]
    assert merged.summary("rate").requests == 29  # two warmup requests set apart
    assert merged.summary("rate", phase="warmup").requests == 2
    assert merged.summary("conc").requests == 14
    assert merged.shard is None
    assert [s.index for s in merged.shards] == [0, 1, 2]


def test_merged_percentiles_equal_one_computation_over_the_same_records(
    merged: Results,
) -> None:
    for stage in ("rate", "conc"):
        records = [
            record_from_out(r) for r in merged.records if r.stage == stage and r.phase == "measure"
        ]
        for metric in ("ttft", "e2e", "itl"):
            sketch = MetricSketch()
            for rec in records:
                if metric == "itl":
                    sketch.add_many(itl_values(rec))
                elif (value := request_metrics(rec).get(metric)) is not None:
                    sketch.add(value)
            pooled = MetricStats.from_sketch(sketch)
            stats = merged.summary(stage).metrics[metric]
            assert stats.exact
            assert stats.n == pooled.n
            for stat in ("p50", "p90", "p95", "p99", "max"):
                assert stats.get(stat) == pooled.get(stat), (stage, metric, stat)
    # ... and the values themselves are the stored ones (ms, from the records).
    ttfts = sorted(
        r.ttft or 0.0 for r in merged.records if r.stage == "rate" and r.phase == "measure"
    )
    assert merged.summary("rate").metrics["ttft"].max == pytest.approx(ttfts[-1], abs=1e-9)


def test_costs_are_summed_exactly(shards: list[Results], merged: Results) -> None:
    for stage in ("rate", "conc"):
        parts = [s.summary(stage).cost for s in shards]
        total = sum((Decimal(str(c["total_usd"])) for c in parts if c), Decimal(0))
        cost = merged.summary(stage).cost
        assert cost is not None
        assert Decimal(str(cost["total_usd"])) == total
        records = sum(
            (
                Decimal(r.cost_usd)
                for r in merged.records
                if r.stage == stage and r.phase == "measure" and r.cost_usd
            ),
            Decimal(0),
        )
        assert total == records
        assert merged.summary(stage).metrics["cost"].n == merged.summary(stage).requests


def test_slas_are_judged_once_on_the_merged_data(merged: Results) -> None:
    verdicts = {(v.sla, v.stage): v for v in merged.verdicts}
    assert verdicts[("ttft.p50 < 5s", "rate")].n == 29
    assert verdicts[("ttft.p50 < 5s", "conc")].n == 14
    assert verdicts[("error_rate < 1%", "rate")].outcome == "pass"
    assert ("error_rate < 1%", "conc") not in verdicts  # scoped to its stage


def test_a_shard_overloaded_distrusts_the_merged_run(shards: list[Results]) -> None:
    first = shards[0]
    assert first.integrity is not None
    assert first.integrity.harness is not None
    harness = first.integrity.harness.model_copy(
        update={"status": "overloaded", "reasons": ("event loop lag p99 99 ms > 25 ms",)}
    )
    integrity = first.integrity.model_copy(update={"harness": harness})
    merged = lens.merge([first.model_copy(update={"integrity": integrity}), *shards[1:]])
    assert {v.outcome for v in merged.verdicts} == {"inconclusive"}
    assert "shard 0: event loop lag" in merged.verdicts[0].reason
    assert merged.exit_code == 3


def test_refusals(shards: list[Results]) -> None:
    with pytest.raises(ResultsError, match=r"missing shard 2 of 3"):
        lens.merge(shards[:2])
    with pytest.raises(ResultsError, match=r"shard 1 given twice: results #1 and results #3"):
        lens.merge([*shards, shards[1]])
    info = shards[2].shard
    assert info is not None
    foreign = shards[2].model_copy(update={"shard": info.model_copy(update={"plan_hash": "x"})})
    with pytest.raises(ResultsError, match=r"results #2: shard of another plan \(x, not"):
        lens.merge([*shards[:2], foreign])
    plain = shards[0].model_copy(update={"shard": None})
    with pytest.raises(ResultsError, match=r"results #0: not a shard's results"):
        lens.merge([plain, *shards[1:]])
    # Merged summaries are rebuilt from the records: a shard listing a sample cannot merge.
    sampled = shards[1].model_copy(
        update={"records": shards[1].records[:2], "records_omitted": len(shards[1].records) - 2}
    )
    with pytest.raises(ResultsError, match=r"results #1: lists 2 of its \d+ records"):
        lens.merge([shards[0], sampled, shards[2]])


def test_cli_merge_writes_and_refuses(
    shards: list[Results], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for k, results in enumerate(shards):
        path = tmp_path / f"shard-{k}.json"
        path.write_text(results.to_json(), encoding="utf-8")
        paths.append(str(path))
    out = tmp_path / "merged.json"
    code = main(["merge", *paths, "-o", str(out), "-q"])
    merged = lens.load_results(out)
    assert code == merged.exit_code
    assert len(merged.records) == 45
    assert main(["merge", paths[0], paths[2], "-q"]) == 2
    assert "missing shard 1 of 3" in capsys.readouterr().err


def test_the_plan_hash_is_the_plans(shards: list[Results]) -> None:
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    assert {s.shard.plan_hash for s in shards if s.shard} == {plan_hash(plan)}
