from __future__ import annotations

import pytest
import trio
import trio.testing

from lens.errors import ProviderError
from lens.plan.model import (
    ArrivalSchedule,
    ClosedLoop,
    Message,
    OpenAISettings,
    OpenLoop,
    Plan,
    PromptSpec,
    ProviderSpec,
    RetryPolicy,
    StagePlan,
)
from lens.providers import registry
from lens.records import ErrorClass, RequestRecord
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script

MS = 1_000_000
PROVIDER = ProviderSpec(
    id="p",
    type="openai-compatible",
    model="m",
    base_url="http://fake/v1",
    settings=OpenAISettings(),
)
PROMPTS = {
    "a": PromptSpec(id="a", messages=(Message("user", "hi"),)),
    "b": PromptSpec(id="b", messages=(Message("user", "yo"),)),
}


def plan_of(*stages: StagePlan) -> Plan:
    return Plan(
        name="t",
        description="",
        source="t.yaml",
        providers={"p": PROVIDER},
        prompts=PROMPTS,
        stages=stages,
        slas=(),
    )


def open_stage(
    offsets: list[float] | ArrivalSchedule, *, max_concurrency: int | None = None, **kw: object
) -> StagePlan:
    """An open-loop unit sending at ``offsets`` (or on a schedule)."""
    schedule = offsets if isinstance(offsets, ArrivalSchedule) else ArrivalSchedule(tuple(offsets))
    base: dict[str, object] = {
        "stage": "s",
        "provider": "p",
        "pattern": "constant-rate",
        "prompts": ("a", "b"),
        "timeout_s": 5.0,
        "max_tokens": 16,
        "load": OpenLoop(schedule, max_concurrency),
    }
    base.update(kw)
    return StagePlan(**base)  # type: ignore[arg-type]


async def run(plan: Plan, transport: FakeOpenAI) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    await StageRunner(
        plan, plan.providers, records.append, transport_for=lambda _: transport
    ).run_all()
    return sorted(records, key=lambda r: r.index)


async def test_open_loop_sends_on_an_absolute_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(ttft_s=0.1, itl_s=0.01, tokens=3))
    recs = await run(plan_of(open_stage([0.0, 0.2, 0.4, 0.6])), fake)
    assert [r.index for r in recs] == [0, 1, 2, 3]
    assert [r.prompt for r in recs] == ["a", "b", "a", "b"]
    t0 = recs[0].t_intended
    assert t0 is not None
    for i, r in enumerate(recs):
        assert r.ok, r.error_message
        assert r.t_intended == t0 + i * 200 * MS
        assert r.t_dispatch == r.t_intended  # the mock clock costs no time: no lag
        assert r.t_first_token is not None
        assert r.t_first_token - r.t_dispatch == 100 * MS
        assert r.chunk_times == (
            r.t_first_token,
            r.t_first_token + 10 * MS,
            r.t_first_token + 20 * MS,
        )
        assert r.output_tokens == 3
        assert r.input_tokens == 5


async def test_capacity_cap_wait_is_counted_as_dispatch_lag(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(ttft_s=0.1, itl_s=0.0, tokens=1))
    recs = await run(plan_of(open_stage([0.0, 0.0, 0.0], pattern="burst", max_concurrency=1)), fake)
    lags = sorted(r.t_dispatch - r.t_intended for r in recs if r.t_intended is not None)
    assert lags == [0, 100 * MS, 200 * MS]
    assert fake.max_in_flight == 1


async def test_closed_loop_keeps_n_in_flight(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeOpenAI(Script(ttft_s=0.05, itl_s=0.01, tokens=2))
    stage = StagePlan(
        stage="c",
        provider="p",
        pattern="concurrency",
        prompts=("a",),
        timeout_s=5.0,
        max_tokens=None,
        load=ClosedLoop(concurrency=2, requests=5),
    )
    recs = await run(plan_of(stage), fake)
    assert [r.index for r in recs] == [0, 1, 2, 3, 4]
    assert all(r.t_intended is None for r in recs)
    assert fake.max_in_flight == 2


async def test_closed_loop_duration_stops_new_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(ttft_s=0.1, itl_s=0.0, tokens=1))
    stage = StagePlan(
        stage="c",
        provider="p",
        pattern="concurrency",
        prompts=("a",),
        timeout_s=5.0,
        max_tokens=None,
        load=ClosedLoop(concurrency=1, duration_s=0.35),
    )
    recs = await run(plan_of(stage), fake)
    assert len(recs) == 4  # starts at 0, 0.1, 0.2, 0.3; none at 0.4


async def test_timeout_is_a_record(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeOpenAI(Script(hang=True))
    recs = await run(plan_of(open_stage([0.0], timeout_s=2.0)), fake)
    (r,) = recs
    assert not r.ok
    assert r.error_class is ErrorClass.TIMEOUT
    assert r.t_end - r.t_dispatch == 2000 * MS
    assert r.t_headers is not None
    assert r.t_first_token is None


@pytest.mark.parametrize(
    ("script", "cls"),
    [
        (Script(status=429), ErrorClass.HTTP_429),
        (Script(status=400), ErrorClass.HTTP_4XX),
        (Script(status=500), ErrorClass.HTTP_5XX),
        (Script(status=503), ErrorClass.OVERLOADED),
        (Script(connect_error=True), ErrorClass.CONNECT),
        (Script(cut_after=1), ErrorClass.CUT_STREAM),
        (Script(tokens=0), ErrorClass.EMPTY),
    ],
)
async def test_error_classes(
    autojump_clock: trio.testing.MockClock, script: Script, cls: ErrorClass
) -> None:
    recs = await run(plan_of(open_stage([0.0])), FakeOpenAI(script))
    (r,) = recs
    assert not r.ok
    assert r.error_class is cls
    assert r.error_message


async def test_cut_stream_keeps_what_arrived(autojump_clock: trio.testing.MockClock) -> None:
    recs = await run(plan_of(open_stage([0.0])), FakeOpenAI(Script(cut_after=2, tokens=5)))
    (r,) = recs
    assert r.error_class is ErrorClass.CUT_STREAM
    assert len(r.chunk_times) == 2
    assert r.output_tokens == 2
    assert r.token_source is not None
    assert r.token_source.value == "estimated"


async def test_interrupted_run_keeps_in_flight_records_and_windows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(ttft_s=10.0, tokens=1))
    records: list[RequestRecord] = []
    plan = plan_of(open_stage([0.0, 0.0, 5.0, 50.0]))
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    with trio.move_on_after(1.0):
        await runner.run_all()
    assert len(records) == 2
    assert {r.error_class for r in records} == {ErrorClass.CANCELLED}
    (window,) = runner.windows
    assert window.started == 2
    assert window.planned == 4
    assert window.t_end - window.t_start == 1000 * MS


async def test_misconfigured_provider_stops_the_run_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(spec: ProviderSpec) -> object:
        raise ProviderError(f"provider {spec.id!r}: no credentials")

    monkeypatch.setitem(registry.ADAPTERS, "openai-compatible", broken)
    fake = FakeOpenAI(Script())
    with pytest.raises(ProviderError, match="no credentials"):
        await run(plan_of(open_stage([0.0])), fake)
    assert fake.calls == 0


async def test_no_retry_unless_asked(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeOpenAI(Script(status=429))
    recs = await run(plan_of(open_stage([0.0])), fake)
    assert [r.attempt for r in recs] == [1]
    assert fake.calls == 1


async def test_retries_are_each_recorded_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Fails twice with 429, then succeeds: three records, waits of 0.5 s then 1 s.
    fake = FakeOpenAI(lambda n: Script(status=429) if n < 2 else Script(tokens=2))
    policy = RetryPolicy(max_retries=3, on=frozenset({"http_429"}), backoff_s=0.5, max_wait_s=5)
    recs = await run(plan_of(open_stage([0.0], retries=policy)), fake)
    recs.sort(key=lambda r: r.attempt)
    assert [(r.attempt, r.ok, r.index) for r in recs] == [
        (1, False, 0),
        (2, False, 0),
        (3, True, 0),
    ]
    assert recs[0].t_intended is not None
    assert recs[1].t_intended is None  # a retry is not on the schedule
    assert recs[1].t_dispatch - recs[0].t_end == 500 * MS
    assert recs[2].t_dispatch - recs[1].t_end == 1000 * MS


async def test_retries_stop_at_the_limit_and_skip_other_classes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RetryPolicy(max_retries=2, on=frozenset({"http_429"}), backoff_s=0.1, max_wait_s=5)
    always_429 = FakeOpenAI(Script(status=429))
    recs = await run(plan_of(open_stage([0.0], retries=policy)), always_429)
    assert sorted(r.attempt for r in recs) == [1, 2, 3]
    server_error = FakeOpenAI(Script(status=500))
    recs = await run(plan_of(open_stage([0.0], retries=policy)), server_error)
    assert [r.attempt for r in recs] == [1]


def test_retry_wait_prefers_the_server_hint_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=3, on=frozenset({"http_429"}), backoff_s=1.0, max_wait_s=10)
    assert policy.wait_s(1, None) == 1.0
    assert policy.wait_s(3, None) == 4.0
    assert policy.wait_s(1, 2.5) == 2.5
    assert policy.wait_s(1, 60.0) == 10.0
