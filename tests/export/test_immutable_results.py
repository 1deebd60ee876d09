"""Results are immutable all the way down: built by the pipeline or read back from a file,
no list, mapping or value inside them can be changed in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lens.export.results import Results, load_results
from tests.export._results import rich_results


def _built(tmp_path: Path) -> Results:
    return rich_results()


def _loaded(tmp_path: Path) -> Results:
    path = tmp_path / "results.json"
    path.write_text(rich_results().to_json(), encoding="utf-8")
    return load_results(path)


# What a caller might try on results it was handed (typed Any: mypy would refuse them all).
MUTATIONS: dict[str, Callable[[Any], object]] = {
    "summaries.append": lambda r: r.summaries.append(r.summaries[0]),
    "summaries[0] =": lambda r: r.summaries.__setitem__(0, r.summaries[0]),
    "records[0].chunk_tokens.append": lambda r: r.records[0].chunk_tokens.append(1),
    "records[0].chunk_offsets[0] =": lambda r: r.records[0].chunk_offsets.__setitem__(0, 0.0),
    "summaries[0].metrics[...] =": lambda r: r.summaries[0].metrics.__setitem__("ttft", None),
    "summaries[0].metrics.pop": lambda r: r.summaries[0].metrics.pop("ttft"),
    "error_counts[...] =": lambda r: r.summaries[0].error_counts.__setitem__("http_5xx", 0),
    "token_sources[...] =": lambda r: r.summaries[0].token_sources.__setitem__("usage", 0),
    "cost[...] =": lambda r: r.summaries[1].cost.__setitem__("total_usd", "0"),
    "provider_facts[...] =": lambda r: r.records[0].provider_facts.__setitem__("x", "y"),
    "plan[...] =": lambda r: r.plan.__setitem__("name", "x"),
    "plan stages.append": lambda r: r.plan["stages"].append({}),
    "plan stage entry [...] =": lambda r: r.plan["stages"][0].__setitem__("stage", "x"),
    "verdicts.append": lambda r: r.verdicts.append(r.verdicts[0]),
    "integrity.warnings.append": lambda r: r.integrity.warnings.append("x"),
    "sweeps[0].probes.append": lambda r: r.sweeps[0].probes.append(r.sweeps[0].probes[0]),
    "environment.argv.append": lambda r: r.environment.argv.append("x"),
}


@pytest.mark.parametrize("make", [_built, _loaded], ids=["built", "loaded"])
@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_no_sequence_or_mapping_inside_results_can_be_changed(
    make: Callable[[Path], Results], what: str, tmp_path: Path
) -> None:
    results = make(tmp_path)
    before = results.to_json()
    with pytest.raises((TypeError, AttributeError)):
        MUTATIONS[what](results)
    assert results.to_json() == before


@pytest.mark.parametrize("make", [_built, _loaded], ids=["built", "loaded"])
def test_values_inside_results_are_frozen(make: Callable[[Path], Results], tmp_path: Path) -> None:
    results = make(tmp_path)
    s = results.summaries[0]
    with pytest.raises(ValidationError, match="frozen"):
        s.requests = 0
    with pytest.raises(FrozenInstanceError):
        s.metrics["ttft"].p95 = 0.0  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        results.verdicts[0].outcome = "pass"  # type: ignore[misc]
    assert s.pacing is not None
    with pytest.raises(FrozenInstanceError):
        s.pacing.sent = 0  # type: ignore[misc]


def test_read_only_mappings_still_read_like_the_json_objects() -> None:
    s = rich_results().summaries[0]
    assert dict(s.error_counts) == s.error_counts
    assert s.metrics["ttft"].unit == "ms"
    assert list(s.metrics) == list(s.model_dump()["metrics"])


def test_every_mutation_above_reaches_something_that_exists() -> None:
    # Else an AttributeError on None would pass for immutability.
    r = rich_results()
    assert r.summaries[1].cost is not None
    assert r.integrity is not None
    assert r.sweeps[0].probes
    assert r.records[0].chunk_tokens
    assert r.records[0].provider_facts is not None
    assert r.plan["stages"]
