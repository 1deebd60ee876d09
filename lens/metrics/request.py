"""Per-request metric values derived from a ``RequestRecord`` (formulas: docs/metrics.md).

Every time is returned in milliseconds (float), throughputs in tokens per second, token
counts as plain numbers.  A metric that could not be measured is ``None`` (absent),
never 0: a missing stamp, a single output token for ``tpot``, an open-loop-only metric
in a closed-loop stage.

Which requests count
--------------------
Response-latency metrics (``ttfb``, ``ttft``, ``ttfot``, ``e2e``, ``tpot``, ``itl``,
``icl``, ``ttft_from_intended``, ``e2e_from_intended``, ``output_tokens_per_s``) and the
token counts are taken from **successful requests only**.  A 500 answered in 3 ms, a
429 whose headers came back at once, or a stream cut after its first token would
otherwise *improve* the latency percentiles of a server that is failing; failed requests
are not hidden, they count in ``requests``, ``errors``, ``error_rate`` and the
per-class error counts instead.  ``dispatch_lag`` describes the client (how late lens
sent the request against its schedule), not the server's answer, so it counts for
every request, failed or not.

``include_failed=True`` lifts the success rule, for per-request exports and debugging
that want whatever stamps a failed request did reach; summaries never use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lens.metric_catalog import METRICS, SCALAR_METRICS, SERIES_METRICS
from lens.records import RequestRecord

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def _span_ms(start: int | None, end: int | None) -> float | None:
    """``end - start`` in ms, or None when either stamp was never reached."""
    if start is None or end is None:
        return None
    return (end - start) / NS_PER_MS


def _count(n: int | None) -> float | None:
    return None if n is None else float(n)


def tpot_ms(rec: RequestRecord) -> float | None:
    """(t_last_token - t_first_token) / (output_tokens - 1), needs >= 2 tokens.

    Ends at the last token, so trailing usage or ``[DONE]`` frames do not count.  When
    every token arrived in one chunk the decode time observed is 0 and so is ``tpot``.
    """
    n = rec.output_tokens
    decode = _span_ms(rec.t_first_token, rec.t_last_token)
    if n is None or n < 2 or decode is None:
        return None
    return decode / (n - 1)


def output_tokens_per_s(rec: RequestRecord) -> float | None:
    """(output_tokens - 1) / decode seconds; None for < 2 tokens or no decode time."""
    n = rec.output_tokens
    if n is None or n < 2 or rec.t_first_token is None or rec.t_last_token is None:
        return None
    decode_ns = rec.t_last_token - rec.t_first_token
    if decode_ns <= 0:
        return None
    return (n - 1) * NS_PER_S / decode_ns


def ttft_overhead_ms(rec: RequestRecord) -> float | None:
    """TTFT less the engine's own prefill time: what the network, the engine's queue, HTTP
    and the stream's framing added.  Needs both."""
    engine = rec.engine
    if engine is None or engine.prompt_ms is None:
        return None
    ttft = _span_ms(rec.t_dispatch, rec.t_first_token)
    return None if ttft is None else ttft - engine.prompt_ms


Formula = Callable[[RequestRecord], float | None]

# One formula per scalar metric of the catalogue (lens.metric_catalog), keyed by its name;
# the catalogue's entry says what it is and which requests it counts.
FORMULAS: dict[str, Formula] = {
    "ttft": lambda r: _span_ms(r.t_dispatch, r.t_first_token),
    "ttfot": lambda r: _span_ms(r.t_dispatch, r.t_first_visible),
    "ttfb": lambda r: _span_ms(r.t_dispatch, r.t_headers),
    "tpot": tpot_ms,
    "e2e": lambda r: _span_ms(r.t_dispatch, r.t_end),
    "dispatch_lag": lambda r: _span_ms(r.t_intended, r.t_dispatch),
    "ttft_from_intended": lambda r: _span_ms(r.t_intended, r.t_first_token),
    "e2e_from_intended": lambda r: _span_ms(r.t_intended, r.t_end),
    "output_tokens_per_s": output_tokens_per_s,
    "input_tokens": lambda r: _count(r.input_tokens),
    "output_tokens": lambda r: _count(r.output_tokens),
    "engine_prefill": lambda r: None if r.engine is None else r.engine.prompt_ms,
    "ttft_overhead": ttft_overhead_ms,
    "engine_tpot": lambda r: None if r.engine is None else r.engine.per_token_ms,
}
if tuple(FORMULAS) != SCALAR_METRICS:  # a catalogue entry without its formula, or the reverse
    raise ImportError(
        f"lens.metrics.request.FORMULAS {tuple(FORMULAS)} do not match the catalogue's "
        f"scalar metrics {SCALAR_METRICS}"
    )
# The metrics a failed request still has (describing the client, not the server's answer).
_FAILED_TOO: tuple[tuple[str, Formula], ...] = tuple(
    (name, f) for name, f in FORMULAS.items() if METRICS[name].counts == "all"
)


def request_metrics(rec: RequestRecord, *, include_failed: bool = False) -> dict[str, float | None]:
    """Every scalar metric of one request, keyed as ``SCALAR_METRICS``.

    For a failed request only the metrics that count every request (``dispatch_lag``) are
    filled unless ``include_failed``.
    """
    if rec.ok or include_failed:
        return {name: formula(rec) for name, formula in FORMULAS.items()}
    out: dict[str, float | None] = dict.fromkeys(SCALAR_METRICS)
    for name, formula in _FAILED_TOO:
        out[name] = formula(rec)
    return out


def itl_values(rec: RequestRecord, *, include_failed: bool = False) -> list[float]:
    """Token-normalised inter-token latencies (ms) of one request (rule: ``itl_gaps``)."""
    if not (rec.ok or include_failed):
        return []
    return itl_gaps(rec.chunk_times, rec.chunk_tokens, per_ms=NS_PER_MS)


def icl_values(rec: RequestRecord, *, include_failed: bool = False) -> list[float]:
    """Raw inter-chunk latencies (ms) between consecutive token-bearing chunks."""
    if not (rec.ok or include_failed):
        return []
    return icl_gaps(rec.chunk_times, per_ms=NS_PER_MS)


# One formula per series metric of the catalogue: a successful request's gaps (ms).
SERIES_FORMULAS: dict[str, Callable[[RequestRecord], list[float]]] = {
    "itl": itl_values,
    "icl": icl_values,
}
if tuple(SERIES_FORMULAS) != SERIES_METRICS:
    raise ImportError(
        f"lens.metrics.request.SERIES_FORMULAS {tuple(SERIES_FORMULAS)} do not match the "
        f"catalogue's series metrics {SERIES_METRICS}"
    )


def itl_gaps(times: Sequence[float], tokens: Sequence[int], *, per_ms: float = 1) -> list[float]:
    """Token-normalised inter-token latencies (ms) from chunk arrival times.

    ``times`` are in any unit, ``per_ms`` of which make a millisecond (ns on the run
    clock, ms in a results file).  For each consecutive pair of token-bearing chunks, the
    gap before the later chunk is split evenly over the ``c`` tokens it carries: ``c``
    values of ``gap / c``.  A chunk counted as 0 tokens (or with no count at all) is
    taken as 1, since it was recorded because it carried *some* token.  The first chunk
    contributes nothing: what precedes it is ``ttft``.
    """
    out: list[float] = []
    for k in range(1, len(times)):
        gap = (times[k] - times[k - 1]) / per_ms
        c = max(tokens[k], 1) if k < len(tokens) else 1
        if c == 1:
            out.append(gap)
        else:
            out.extend([gap / c] * c)
    return out


def icl_gaps(times: Sequence[float], *, per_ms: float = 1) -> list[float]:
    """Raw gaps (ms) between consecutive chunk arrival times (unit as ``itl_gaps``)."""
    return [(times[k] - times[k - 1]) / per_ms for k in range(1, len(times))]
