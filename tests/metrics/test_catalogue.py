"""The metric catalogue is the one definition of each metric: what computes, stores,
judges and exports metrics covers exactly its entries."""

from __future__ import annotations

import typing

from lens.export.facts import METRICS as EXPORTED_METRICS
from lens.export.facts import RECORD_TIMES_MS
from lens.export.results import RecordOut
from lens.metric_catalog import (
    CATALOGUE,
    ENGINE_METRICS,
    METRICS,
    REQUEST_METRICS,
    SCALAR_METRICS,
    SERIES_METRICS,
    STAGE_METRICS,
)
from lens.metrics.request import FORMULAS, SERIES_FORMULAS, request_metrics
from lens.metrics.summary import StageAccumulator
from tests.metrics._factory import failed, record


def test_each_metric_is_defined_once_with_a_unit_a_formula_and_a_description() -> None:
    assert len(METRICS) == len(CATALOGUE)
    assert list(METRICS) == [*REQUEST_METRICS, *STAGE_METRICS]
    for m in CATALOGUE:
        assert m.formula, m.name
        assert m.description, m.name


def test_the_formulas_cover_exactly_the_catalogues_per_request_metrics() -> None:
    assert tuple(FORMULAS) == SCALAR_METRICS
    assert tuple(SERIES_FORMULAS) == SERIES_METRICS
    assert set(request_metrics(record())) == set(SCALAR_METRICS)
    # dispatch_lag counts every request, the rest only successful ones
    lagging = failed(t_intended=5_000_000)
    assert {k for k, v in request_metrics(lagging).items() if v is not None} == {
        name for name in SCALAR_METRICS if METRICS[name].counts == "all"
    }


def test_a_stage_summarises_every_per_request_metric_of_the_catalogue() -> None:
    assert list(StageAccumulator("s", "p").summary().metrics) == list(REQUEST_METRICS)


def test_a_records_metric_fields_are_the_catalogues_scalar_metrics() -> None:
    fields = {name for name in RecordOut.model_fields if name in METRICS}
    assert fields == set(SCALAR_METRICS)
    hints = typing.get_type_hints(RecordOut)
    for name in SCALAR_METRICS:
        expected = int | None if METRICS[name].unit == "count" else float | None
        assert hints[name] == expected, name


def test_exporters_take_their_metrics_from_the_catalogue() -> None:
    assert tuple(REQUEST_METRICS) == EXPORTED_METRICS
    assert set(RECORD_TIMES_MS) | set(ENGINE_METRICS) == {
        m for m in SCALAR_METRICS if METRICS[m].unit == "ms"
    }
    hinted = {m.name for m in CATALOGUE if m.unmeasured}
    assert hinted <= set(REQUEST_METRICS)
