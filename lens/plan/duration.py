"""How long a stage unit should take, before anything is sent, and on what assumption.

Two figures and the sentence behind them:

* ``expected_s``: what the unit should take.  Against the simulator the response time is
  known from its settings (e2e = ttft + itl x (tokens - 1), no errors, no jitter), and its
  ``capacity`` says how many responses it generates at once, so closed loops run in waves:
  ``ceil(requests / min(concurrency, capacity)) x e2e``.  Against a real provider the
  response time is unknown: an open loop is expected to take its schedule's span, a
  duration-bounded closed loop its duration (both then drain), and a closed loop bounded
  by its request count has no expectation (None).
* ``max_s``: an upper bound from the timeouts, whatever the provider: each request takes
  at most ``timeout`` per attempt (plus the retry waits), a worker runs its requests one
  after another, so ``requests`` requests on ``concurrency`` workers end within
  ``ceil(requests / concurrency)`` of those; a duration ends new requests and the ones in
  flight then run at most one more (or the drain's grace).
* ``basis``: the assumption, in words, for ``lens plan``.

Pure: the plan's units and provider specs in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lens.plan.model import (
    ClosedLoop,
    IdleProbe,
    OpenLoop,
    ProviderSpec,
    SimSettings,
    StagePlan,
)

# A duration that is a whole number of e2e waves should not round up to one more wave.
_WAVE_EPSILON = 1e-9

# Bounds the run keeps and the plan's figures count on: the budget guard (lens.run.budget)
# and the cost estimate (lens.metrics.estimate) both use them, so they live with the plan.
# lens's own work after a request's deadline (cancelling it, recording it, closing the
# unit's connections) is counted as taking at most this long.
SETTLE_MARGIN_S = 1.0
# lens's transports give up connecting after min(timeout, this) (lens.run.executor).
CONNECT_BOUND_S = 30.0


def setup_bound_s(unit: StagePlan) -> float:
    """The longest a unit's set-up (connecting ahead of its window) can take."""
    return min(unit.timeout_s, CONNECT_BOUND_S)


@dataclass(frozen=True, slots=True)
class DurationEstimate:
    expected_s: float | None  # what the unit should take; None: not known before the run
    max_s: float | None  # at most this long (timeouts); None: no bound known
    basis: str  # the assumption behind both, for people


def _sim_tokens(sim: SimSettings, max_tokens: int | None) -> int:
    return sim.output_tokens if max_tokens is None else min(sim.output_tokens, max_tokens)


def _limit(spec: ProviderSpec, max_tokens: int | None) -> int | None:
    """The simulator answers an embeddings batch when its first token would be due."""
    return 1 if spec.endpoint.kind == "embeddings" else max_tokens


def sim_e2e_s(spec: ProviderSpec, max_tokens: int | None) -> float | None:
    """A simulated response's end-to-end time (None: not simulated)."""
    sim = spec.settings
    if not isinstance(sim, SimSettings):
        return None
    return sim.ttft_s + max(_sim_tokens(sim, _limit(spec, max_tokens)) - 1, 0) * sim.itl_s


def request_bound_s(unit: StagePlan) -> float:
    """The longest one request may take: every attempt to its timeout, every retry wait at
    its cap."""
    retries = unit.retries.max_retries if unit.retries is not None else 0
    wait = unit.retries.max_wait_s if unit.retries is not None else 0.0
    return (retries + 1) * unit.timeout_s + retries * wait


def duration_estimate(unit: StagePlan, spec: ProviderSpec) -> DurationEstimate:
    e2e = sim_e2e_s(spec, unit.max_tokens)
    match unit.load:
        case OpenLoop() as load:
            return _open_loop(unit, load, spec, e2e)
        case ClosedLoop() as load:
            return _closed_loop(unit, load, spec, e2e)
        case IdleProbe() as load:
            return _idle_probe(unit, load, spec, e2e)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g}ms"


def _sim_text(spec: ProviderSpec, unit: StagePlan) -> str:
    e2e = sim_e2e_s(spec, unit.max_tokens)
    sim = spec.settings
    assert isinstance(sim, SimSettings)
    assert e2e is not None
    gaps = max(_sim_tokens(sim, _limit(spec, unit.max_tokens)) - 1, 0)
    capacity = f", capacity {sim.capacity}" if sim.capacity is not None else ""
    return (
        f"{spec.id}: e2e {_ms(e2e)} = ttft {_ms(sim.ttft_s)} + {gaps} x itl "
        f"{_ms(sim.itl_s)}{capacity}, from its simulator settings, no errors or jitter"
    )


def _worst_text(unit: StagePlan) -> str:
    """The per-request bound, as it was worked out."""
    if unit.retries is None or not unit.retries.max_retries:
        return f"timeout {unit.timeout_s:g}s"
    n = unit.retries.max_retries
    return (
        f"{request_bound_s(unit):g}s a request (timeout {unit.timeout_s:g}s x {n + 1} "
        f"attempts + {n} waits of <= {unit.retries.max_wait_s:g}s)"
    )


def _slots(limit: int | None, spec: ProviderSpec) -> tuple[int | None, str]:
    """Requests served at once (the client's limit, the simulator's capacity), and the
    expression in words (``limit_name`` stands for the limit)."""
    capacity = spec.settings.capacity if isinstance(spec.settings, SimSettings) else None
    if limit is not None and capacity is not None:
        return min(limit, capacity), "min({}, capacity)"
    if capacity is not None:
        return capacity, "capacity"
    return limit, "{}"


def _drained(unit: StagePlan, cutoff: float, natural: float) -> float:
    """When a unit whose requests would end at ``natural`` ends, given its cutoff (the
    duration, or the last send) and the drain's grace."""
    grace = unit.drain_grace_s
    return natural if grace is None else min(natural, cutoff + grace)


def _drain_text(unit: StagePlan) -> str:
    grace = unit.drain_grace_s
    return "" if grace is None else f"; drain: {unit.drain} after {grace:g}s"


def _idle_probe(
    unit: StagePlan, load: IdleProbe, spec: ProviderSpec, e2e: float | None
) -> DurationEstimate:
    probes = load.requests
    gaps = sum(load.gaps_s)
    max_s = gaps + probes * request_bound_s(unit)
    if e2e is not None:
        return DurationEstimate(
            gaps + probes * e2e,
            max_s,
            f"idle-probe: the idle gaps + e2e per probe ({_sim_text(spec, unit)})",
        )
    return DurationEstimate(
        None,
        max_s,
        f"idle-probe: at most the idle gaps + {_worst_text(unit)} per probe (e2e unknown: "
        f"{spec.id} is not simulated)",
    )


def _open_loop(
    unit: StagePlan, load: OpenLoop, spec: ProviderSpec, e2e: float | None
) -> DurationEstimate:
    count = load.arrivals.count
    last = load.arrivals.last_s
    cutoff = unit.cutoff_s if unit.cutoff_s is not None else last
    # The worst case: from the last arrival, the requests still queued behind the client's
    # limit run one slot-load after another.
    waves = math.ceil(count / load.max_concurrency) if load.max_concurrency else 1
    max_s = _drained(unit, cutoff, last + waves * request_bound_s(unit))
    if e2e is None:
        return DurationEstimate(
            _drained(unit, cutoff, last),
            max_s,
            f"open loop: the schedule's span, then the responses in flight, each within "
            f"{_worst_text(unit)} (e2e unknown: {spec.id} is not simulated){_drain_text(unit)}",
        )
    slots, shape = _slots(load.max_concurrency, spec)
    natural = last + e2e
    limit = ""
    if slots is not None:
        # Arrivals faster than the slots serve queue up: the unit then ends with the last
        # wave of ``slots`` responses.
        natural = max(natural, math.ceil(count / slots) * e2e)
        limit = f", or ceil(arrivals / {shape.format('max_concurrency')}) x e2e if longer"
    return DurationEstimate(
        _drained(unit, cutoff, natural),
        max_s,
        f"open loop: the last arrival + e2e{limit} ({_sim_text(spec, unit)}){_drain_text(unit)}",
    )


def _closed_loop(
    unit: StagePlan, load: ClosedLoop, spec: ProviderSpec, e2e: float | None
) -> DurationEstimate:
    workers = load.concurrency
    worst = request_bound_s(unit)
    bounds = []
    if load.requests is not None:
        # Each worker starts its next request as soon as one ends, each within ``worst``:
        # the rounds of the warmup, then (after its barrier) those of the measured requests.
        bounds.append(_rounds(unit, load.requests, workers) * worst)
    if load.duration_s is not None:
        bounds.append(_drained(unit, load.duration_s, load.duration_s + worst))
    max_s = min(bounds) if bounds else None
    if e2e is None:
        return _closed_loop_unknown(unit, load, spec, max_s)
    slots, shape = _slots(workers, spec)
    assert slots is not None
    slots_text = shape.format("concurrency")
    # Requests are served in waves of ``slots``, e2e each; the rest of the workers'
    # requests wait in the simulator's queue.
    queued = math.ceil(workers / slots) - 1
    ends = []
    rules = []
    if load.requests is not None:
        ends.append(_rounds(unit, load.requests, slots) * e2e)
        rules.append(f"ceil(requests / {slots_text}) x e2e (the warmup's waves apart)")
    if load.duration_s is not None:
        # At the duration the wave in flight ends, then the requests queued behind it.
        wave_end = math.ceil(load.duration_s / e2e - _WAVE_EPSILON) * e2e
        ends.append(_drained(unit, load.duration_s, wave_end + queued * e2e))
        rules.append(
            "the duration, then the wave in flight and the requests queued behind it "
            f"({slots_text} at once, e2e each)"
        )
    rule = " or ".join(rules) + (", whichever ends first" if len(rules) > 1 else "")
    return DurationEstimate(
        min(ends),
        max_s,
        f"closed loop: {rule} ({_sim_text(spec, unit)}){_drain_text(unit)}",
    )


def _rounds(unit: StagePlan, requests: int, at_once: int) -> int:
    """Waves of ``at_once`` a closed loop of ``requests`` runs: a warmup of N requests is a
    barrier (measured requests start once it has ended), so its waves count apart; a timed
    warmup may hold one more."""
    phases = unit.phases
    if phases.warmup_s > 0:
        return math.ceil(requests / at_once) + 1
    warmup = min(phases.warmup_requests, requests)
    return math.ceil(warmup / at_once) + math.ceil((requests - warmup) / at_once)


def _closed_loop_unknown(
    unit: StagePlan, load: ClosedLoop, spec: ProviderSpec, max_s: float | None
) -> DurationEstimate:
    unknown = f"e2e unknown: {spec.id} is not simulated"
    if load.requests is None:
        # It sends for its duration whatever the responses take; only the drain is unknown.
        return DurationEstimate(
            load.duration_s,
            max_s,
            f"closed loop: its duration, then the requests in flight, each within "
            f"{_worst_text(unit)} ({unknown}){_drain_text(unit)}",
        )
    either = ", or the duration and one more, if less" if load.duration_s is not None else ""
    return DurationEstimate(
        None,
        max_s,
        f"closed loop: at most ceil(requests / concurrency) x {_worst_text(unit)}{either} "
        f"({unknown}){_drain_text(unit)}",
    )
