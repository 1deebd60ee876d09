"""Regression thresholds: how much worse than the baseline a statistic may get.

Written ``METRIC.STAT: +10%`` (relative to the baseline's value) or ``+50ms`` (absolute,
in any unit an SLA on that metric takes: ``+2ms``, ``+0.1s``, ``+5/s``, ``+$0.0001``).
A threshold is a magnitude: which direction is worse is known per metric (more TTFT is
worse, more tokens per second is better), so the sign may be ``+`` or left out, never
``-``.  On a ratio (``error_rate``) a percentage is absolute, in percentage points:
``error_rate: +0.5%`` allows 1.0 % -> 1.5 %, not 1.0 % -> 1.005 %.

Parsed once, where the scenario loads or ``--threshold`` is read, through the SLA parser,
so metric names, statistics and units mean exactly what they mean in an SLA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lens.metric_catalog import REQUEST_METRICS, STAGE_METRICS
from lens.scenario.sla import SlaSyntaxError, parse_sla

_AMOUNT = re.compile(r"^\s*(?P<sign>[+-])?\s*(?P<rest>.*?)\s*$")
_SHAPE = re.compile(r"^\$?\s*[0-9]+(?:\.[0-9]+)?\s*(?:ms|s|m|%|/s|/m|tokens/s|USD|usd)?$")
_RELATIVE = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)\s*%$")


class ThresholdError(ValueError):
    """A threshold that cannot be used; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    stat: str | None  # None for per-stage values such as error_rate
    amount: float  # >= 0: a fraction of the baseline when relative, else the metric's unit
    relative: bool
    text: str  # as written, e.g. "+10%"

    @property
    def key(self) -> str:
        return f"{self.metric}.{self.stat}" if self.stat else self.metric

    def allowed(self, baseline: float) -> float:
        """How far from ``baseline`` a value may move in either direction, in the metric's
        unit, before it is a change."""
        return abs(baseline) * self.amount if self.relative else self.amount


def parse_threshold(key: str, value: object) -> Threshold:
    """``("ttft.p95", "+10%")`` -> ``Threshold``; ``ThresholdError`` says what is wrong."""
    text = str(value).strip() if isinstance(value, (str, int, float)) else None
    if text is None or isinstance(value, bool):
        raise ThresholdError(f"{key}: expected an amount such as +10% or +50ms, got {value!r}")
    m = _AMOUNT.match(text)
    assert m is not None  # the pattern matches any text
    if m["sign"] == "-":
        raise ThresholdError(
            f"{key}: {text!r}: a threshold is how much worse a value may get, written "
            "+10% or +50ms; which direction is worse is known per metric"
        )
    amount_text = m["rest"]
    if not _SHAPE.match(amount_text):
        raise ThresholdError(
            f"{key}: {text!r} is not an amount: expected +10% (relative to the baseline) or "
            "an absolute amount in the metric's unit such as +50ms, +0.5% (a ratio), +5/s"
        )
    metric = key.strip().partition(".")[0]
    relative = _RELATIVE.match(amount_text)
    info = STAGE_METRICS.get(metric) or REQUEST_METRICS.get(metric)
    is_ratio = info is not None and info.unit == "ratio"
    try:
        # The SLA parser checks the metric, the statistic and the unit, and converts the
        # amount to the metric's unit (ms, ratio, per second, USD).
        probe = parse_sla(f"{key.strip()} < {'0' if relative and not is_ratio else amount_text}")
    except SlaSyntaxError as exc:
        raise ThresholdError(f"{key}: {exc}") from None
    if relative and not is_ratio:
        amount, is_relative = float(relative["num"]) / 100.0, True
    else:
        amount, is_relative = probe.threshold, False
    return Threshold(
        metric=probe.metric, stat=probe.stat, amount=amount, relative=is_relative, text=text
    )
