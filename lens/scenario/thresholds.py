"""Regression thresholds: how large a change of a statistic must be to matter.

Written ``METRIC.STAT: +10%`` (relative to the baseline) or as an absolute change in the
units an SLA on that metric takes (``+50ms``, ``+0.2s``, ``+5/s``, ``+$0.0001``); on a
rate (``error_rate``) ``+0.5%`` is percentage points.  Which direction is worse is known
per metric (``BETTER``): more TTFT is worse, more tokens per second is better.

Below the metrics stage on purpose: the scenario loader validates a ``regression:``
block's thresholds and ``lens compare``'s ``--threshold`` flags with the same parser, and
both go through the SLA parser, so names, statistics and units mean what they mean in an
SLA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict

from lens.metric_catalog import REQUEST_METRICS
from lens.scenario.sla import SlaSyntaxError, parse_sla

Better = Literal["lower", "higher"]

# What lens compare checks when no statistic is named (and what repeated stages report the
# run-to-run spread of).
DEFAULT_CHECKS: tuple[str, ...] = (
    "ttft.p50",
    "ttft.p95",
    "itl.p50",
    "itl.p95",
    "e2e.p95",
    "output_tokens_per_s.p50",
    "error_rate",
    "cost.mean",
)

# Which way is better, per metric: what a regression is.  Token counts and request counts
# have no better direction and are not compared.
BETTER: dict[str, Better] = {
    "ttft": "lower",
    "ttfot": "lower",
    "ttfb": "lower",
    "itl": "lower",
    "icl": "lower",
    "tpot": "lower",
    "e2e": "lower",
    "dispatch_lag": "lower",
    "ttft_from_intended": "lower",
    "e2e_from_intended": "lower",
    "output_tokens_per_s": "higher",
    "cost": "lower",
    "error_rate": "lower",
    "success_rate": "higher",
    "goodput": "higher",
    "goodput_ratio": "higher",
}
# Statistics with a sampling distribution lens can bound; min, max and n have none worth
# a verdict (a max is one request).
COMPARABLE_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")
PROPORTIONS: frozenset[str] = frozenset({"error_rate", "success_rate", "goodput_ratio"})


class ThresholdError(ValueError):
    """A threshold that does not parse; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """How large a change must be to matter, either way: ``value`` is a fraction of the
    baseline when ``relative`` (0.10 for ``+10%``), else in the metric's canonical unit
    (ms, tokens/s, USD, or a ratio for rates)."""

    # Held in results (``regressions``) as it is; a results file may not add fields.
    __pydantic_config__ = ConfigDict(extra="forbid")

    value: float
    relative: bool
    text: str

    def __str__(self) -> str:
        return self.text


def default_threshold(label: str) -> Threshold:
    """+2 percentage points for rates, +10 % of the baseline for everything else.

    Why 2 and not 1 point: two error-free runs can only be told "unchanged" once the
    interval of their difference fits within the threshold, which for 0 errors in ``n``
    requests takes ``n`` of about 4 / threshold: ~200 requests for 2 points, ~400 for 1.
    A larger error rate is never hidden by the choice: below that size the verdict is
    inconclusive, not unchanged."""
    metric = label.partition(".")[0]
    if metric in PROPORTIONS:
        return Threshold(0.02, relative=False, text="+2%")
    return Threshold(0.10, relative=True, text="+10%")


_THRESHOLD = re.compile(
    r"^\s*(?:\+|±|\+/-)?\s*(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<rest>\S.*?)?\s*$"
)


def check_label(label: str) -> tuple[str, str | None]:
    """``ttft.p95`` -> ("ttft", "p95"), ``error_rate`` -> ("error_rate", None); a
    ``ThresholdError`` for anything that cannot be compared."""
    try:
        expr = parse_sla(f"{label} < 0")
    except SlaSyntaxError as exc:
        raise ThresholdError(str(exc)) from None
    if expr.metric not in BETTER:
        raise ThresholdError(
            f"{label!r} cannot be compared: {expr.metric} has no better direction; "
            f"comparable metrics: {', '.join(BETTER)}"
        )
    if expr.metric in REQUEST_METRICS and expr.stat not in COMPARABLE_STATS:
        raise ThresholdError(
            f"{label!r} cannot be compared: use one of "
            f"{', '.join(f'{expr.metric}.{s}' for s in COMPARABLE_STATS)}"
        )
    return expr.metric, expr.stat


def parse_threshold(label: str, value: object) -> Threshold:
    """The threshold of one statistic: ``+10%`` (of the baseline), or an absolute change in
    the metric's units, as SLAs write them: ``+50ms``, ``+0.2s``, ``+5/s`` (tokens/s),
    ``+$0.0001``; for rates (``error_rate``) ``+0.5%`` is percentage points.  The sign is
    optional (a threshold applies both ways)."""
    metric, _ = check_label(label)
    text = str(value).strip()
    dollar = text.replace("+", "", 1).lstrip().startswith("$")
    m = _THRESHOLD.match(text.replace("$", "", 1) if dollar else text)
    if m is None:
        raise ThresholdError(
            f"{label}={text}: expected a change like +10% (relative) or +50ms (absolute)"
        )
    unit = (m["rest"] or "").strip()
    if unit == "%" and metric not in PROPORTIONS:
        if dollar:
            raise ThresholdError(f"{label}={text}: write $0.0001 or 10%, not both")
        return Threshold(float(m["num"]) / 100.0, relative=True, text=f"+{m['num']}%")
    number = m["num"]
    sla = f"{label} < {'$' if dollar else ''}{number}{unit}"
    try:
        expr = parse_sla(sla)
    except SlaSyntaxError as exc:
        raise ThresholdError(f"{label}={text}: {exc}") from None
    if metric in PROPORTIONS and expr.threshold > 1:
        raise ThresholdError(f"{label}={text}: a rate changes by at most 100%")
    shown = f"+${number}" if dollar else f"+{number}{unit}"
    return Threshold(expr.threshold, relative=False, text=shown)


def parse_threshold_flag(text: str) -> tuple[str, Threshold]:
    """``METRIC.STAT=+10%`` (``--threshold``) -> (label, threshold)."""
    label, eq, value = text.partition("=")
    if not eq or not label.strip() or not value.strip():
        raise ThresholdError(
            f"--threshold {text!r}: expected METRIC.STAT=CHANGE, e.g. ttft.p95=+10% or itl.p50=+2ms"
        )
    label = label.strip()
    return label, parse_threshold(label, value)
