"""The monitor's state (families, windows, expiry) and its store (write, prune, reload)."""

from __future__ import annotations

import io
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lens.monitor.service import restore
from lens.monitor.state import (
    CycleWindow,
    Histogram,
    MonitorState,
    WindowPart,
    digest_cycle,
    window_label,
)
from lens.monitor.store import CycleStore
from lens.plan.model import ProviderSpec
from lens.records import ErrorClass, RequestRecord

MS = 1_000_000


def _rec(ok: bool = True, cls: ErrorClass | None = None, ttft_ms: int = 100) -> RequestRecord:
    return RequestRecord(
        provider="p",
        stage="s",
        prompt="q",
        index=0,
        ok=ok,
        error_class=cls,
        error_message=None,
        http_status=200 if ok else None,
        t_intended=None,
        t_dispatch=0,
        t_headers=10 * MS if ok else None,
        t_first_chunk=ttft_ms * MS if ok else None,
        t_first_token=ttft_ms * MS if ok else None,
        t_first_visible=ttft_ms * MS if ok else None,
        t_last_token=(ttft_ms + 20) * MS if ok else None,
        t_end=(ttft_ms + 25) * MS,
        chunk_times=(ttft_ms * MS, (ttft_ms + 10) * MS, (ttft_ms + 20) * MS) if ok else (),
        chunk_tokens=(1, 1, 1) if ok else (),
        output_tokens=3 if ok else None,
    )


def _state(windows: tuple[float, ...] = (60.0, 3600.0)) -> MonitorState:
    return MonitorState("scen", every_s=10, deadline_s=8, windows_s=windows, started_at=0.0)


def test_window_labels_read_as_written() -> None:
    assert [window_label(s) for s in (3600, 86400, 1800, 90, 5400, 0.5)] == [
        "1h", "24h", "30m", "90s", "90m", "0.5s",
    ]  # fmt: skip


def test_a_histogram_is_cumulative_with_inf_equal_to_count() -> None:
    from lens.export.prometheus import Family, render  # noqa: PLC0415

    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    fam = Family("x_seconds", "histogram", "x")
    h.add_to(fam, (("a", "b"),))
    (parsed,) = text_string_to_metric_families(render([fam]))
    values = {(s.name, s.labels.get("le")): s.value for s in parsed.samples}
    assert values[("x_seconds_bucket", "0.1")] == 2
    assert values[("x_seconds_bucket", "1")] == 3
    assert values[("x_seconds_bucket", "+Inf")] == 4
    assert values[("x_seconds_count", None)] == 4
    assert values[("x_seconds_sum", None)] == 3.65


def test_a_digest_sets_lens_own_cutoffs_apart_from_errors() -> None:
    spec = ProviderSpec(id="p", type="openai-compatible", base_url="http://127.0.0.1:9", model="m")
    records = [_rec(), _rec(False, ErrorClass.HTTP_429), _rec(False, ErrorClass.CANCELLED)]
    digest = digest_cycle(records, {"p": spec}, ended_at=100.0)
    counts = digest.counts[("s", "p", "m")]
    assert counts.statuses == {"ok": 1, "error": 1, "cancelled": 1}
    assert counts.errors == {"http_429": 1, "cancelled": 1}
    part = digest.window.parts[("s", "p", "m")]
    assert (part.requests, part.errors) == (2, 1)  # cancelled in no error ratio
    assert part.ttft.quantile(0.5) == 0.1
    assert part.itl.count == 2
    assert digest.window.succeeded == frozenset({"p"})


def _window(ended_at: float, ttft_s: float, requests: int = 1, errors: int = 0) -> CycleWindow:
    part = WindowPart(requests=requests, errors=errors)
    part.ttft.add(ttft_s)
    return CycleWindow(ended_at, {("s", "p", "m"): part}, frozenset({"p"}))


def test_windows_merge_the_cycles_within_them_and_old_cycles_expire() -> None:
    state = _state()
    state.add_window(_window(1000.0, 0.5, requests=2, errors=1))
    state.add_window(_window(1050.0, 0.1, requests=2))
    view = state.window_view(1070.0)
    assert view["1m"][("s", "p", "m")].requests == 2  # the first ended 70 s ago
    assert view["1h"][("s", "p", "m")].requests == 4
    assert view["1h"][("s", "p", "m")].ttft.quantile(1.0) == 0.5
    assert state.window_cycles(1070.0) == {"1m": 1, "1h": 2}
    text = state.exposition(1070.0)
    assert (
        'lens_monitor_window_error_ratio{scenario="scen",stage="s",provider="p",model="m",'
        'window="1h"} 0.25' in text
    )
    state.expire(1000.0 + 3601)
    assert len(state.cycles) == 1  # memory bounded by the longest window
    state.expire(1050.0 + 3601)
    assert not state.cycles


def test_the_store_keeps_its_bounds_and_reloads_what_it_kept(tmp_path: Path) -> None:
    store = CycleStore(tmp_path, max_age_s=3600, max_cycles=3)
    for n in range(1, 6):
        store.write(
            number=n,
            outcome="pass",
            exit_code=0,
            duration_s=1.0,
            window=_window(100_000.0 + n * 60, 0.1 * n),
            results_text=None,
        )
        store.prune(100_000.0 + n * 60)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert len(kept) == 3
    assert kept[0].endswith("-000003.json")
    # Age: an hour later than the last, every stored cycle is past retention.
    assert store.prune(100_000.0 + 5 * 60 + 3601) == 3
    assert not list(tmp_path.iterdir())


def test_a_damaged_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    import time  # noqa: PLC0415

    store = CycleStore(tmp_path, max_age_s=3600, max_cycles=10)
    now = time.time()
    store.write(
        number=7,
        outcome="pass",
        exit_code=0,
        duration_s=1.0,
        window=_window(now - 10, 0.2),
        results_text=None,
    )
    (tmp_path / "cycle-20991231T000000Z-000008.json").write_text("{not json")
    state = _state()
    state.started_at = now
    log = io.StringIO()
    restore(state, store, log)
    assert "cycle-20991231T000000Z-000008.json: skipped, unreadable" in log.getvalue()
    assert state.cycle_number == 7
    assert state.last_success == {"p": now - 10}
    assert state.last_results_json is None
    assert state.health(now).ok  # a reloaded cycle is not this process's: time from the start
