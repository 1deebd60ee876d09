"""When the executor scrapes (before each stage, every interval on an absolute schedule
while it runs, after it) and that the scrapes go with the stage: under MockClock, with a
scripted provider and a fake endpoint that notes the instant of every scrape."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from lens.plan.model import (
    ClosedLoop,
    Message,
    OpenAISettings,
    Plan,
    PromptSpec,
    ProviderSpec,
    ServerMetricsSpec,
    StagePlan,
)
from lens.records import RequestRecord
from lens.run.executor import StageRunner
from tests.run.fake_server import FakeOpenAI, Script

SPEC = ServerMetricsSpec(url="http://engine:9/metrics", every_s=1.0, timeout_s=0.5)
PROVIDER = ProviderSpec(
    id="p",
    type="openai-compatible",
    model="m",
    base_url="http://fake/v1",
    settings=OpenAISettings(),
    server_metrics=SPEC,
)


def stage(name: str, requests: int) -> StagePlan:
    # One request at a time, each 1.1 s long (SCRIPT: ttft 0.6 s + a token 0.5 s later), so
    # no scrape tick falls on a stage's end.
    return StagePlan(
        stage=name,
        provider="p",
        pattern="concurrency",
        prompts=("a",),
        timeout_s=30.0,
        max_tokens=None,
        load=ClosedLoop(concurrency=1, requests=requests),
    )


def plan_of(*stages: StagePlan, provider: ProviderSpec = PROVIDER) -> Plan:
    return Plan(
        name="t",
        description="",
        source="t.yaml",
        providers={"p": provider},
        prompts={"a": PromptSpec(id="a", messages=(Message("user", "hi"),))},
        stages=stages,
        slas=(),
    )


class Endpoint:
    """A fake metrics endpoint: notes when it was asked, answers with the requests the
    fake provider has seen so far (a counter) and those in flight (a gauge)."""

    def __init__(self, fake: FakeOpenAI, delay_s: float = 0.0, fail: bool = False) -> None:
        self.fake = fake
        self.delay_s = delay_s
        self.fail = fail
        self.asked: list[float] = []

    async def __call__(self, url: str, _timeout: float) -> str:
        assert url == SPEC.url
        self.asked.append(trio.current_time())
        await trio.sleep(self.delay_s)
        if self.fail:
            raise OSError("connection refused")
        return (
            "# TYPE requests_total counter\n"
            f"requests_total {self.fake.calls}\n"
            "# TYPE in_flight gauge\n"
            f"in_flight {self.fake.in_flight}\n"
        )


def runner(plan: Plan, fake: FakeOpenAI, endpoint: Endpoint, **kw: bool) -> StageRunner:
    records: list[RequestRecord] = []
    return StageRunner(
        plan,
        plan.providers,
        records.append,
        transport_for=lambda _: fake,
        server_metrics_fetch=endpoint,
        **kw,  # type: ignore[arg-type]
    )


SCRIPT = Script(ttft_s=0.6, itl_s=0.5, tokens=2)


async def test_before_every_interval_and_after_each_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(SCRIPT)
    endpoint = Endpoint(fake)
    run = runner(plan_of(stage("one", 3), stage("two", 1)), fake, endpoint)
    await run.run_all()
    t0 = run.clock.t0
    asked = [round(t - t0, 6) for t in endpoint.asked]
    one, two = run.windows
    start_one, end_one = one.t_start / 1e9, one.t_end / 1e9
    start_two, end_two = two.t_start / 1e9, two.t_end / 1e9
    # Stage one lasts 3.3 s: before it, at +1, +2 and +3 s, after it (the +4 s tick never
    # comes: the stage ended, its scrapes with it); stage two (1.1 s): before, +1 s, after.
    assert (end_one - start_one, end_two - start_two) == pytest.approx((3.3, 1.1))
    assert asked == pytest.approx(
        [
            *(start_one + k for k in range(4)),
            end_one,
            start_two,
            start_two + 1,
            end_two,
        ],
        abs=1e-6,
    )
    assert asked[0] <= start_one
    assert asked[5] <= start_two
    (report,) = run.server_metrics()
    s1, s2 = report.stages
    assert (s1.stage, s1.scrapes, s2.stage, s2.scrapes) == ("one", 5, "two", 3)
    assert (report.scrapes, report.failed) == (8, 0)
    (requests,) = s1.counters
    assert (requests.before, requests.after, requests.delta) == (0, 3, 3)
    assert s2.counters[0].delta == 1
    (in_flight,) = report.gauges
    # In flight during stage one's scrapes, idle before and after each stage.
    assert [v for _, v in in_flight.points] == [0, 1, 1, 1, 0, 0, 1, 0]
    assert [t for t, _ in in_flight.points] == [round((t - t0) * 1e9) for t in endpoint.asked]


async def test_a_slow_scrape_skips_the_ticks_it_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(SCRIPT)
    endpoint = Endpoint(fake, delay_s=0.3)
    spec = dataclasses.replace(SPEC, every_s=0.2, timeout_s=0.2)
    run = runner(
        plan_of(stage("one", 1), provider=dataclasses.replace(PROVIDER, server_metrics=spec)),
        fake,
        endpoint,
    )
    await run.run_all()
    (report,) = run.server_metrics()
    # Every scrape times out at 0.2 s: the during scrapes start at +0.2, +0.4, ... (one per
    # tick, never two at once), none after the stage's end; the one at +1.0 s was cut off
    # with the stage at +1.1 s, and is not counted.
    (window,) = run.windows
    start = run.clock.t0 + window.t_start / 1e9
    during = [round(t - start, 6) for t in endpoint.asked[1:-1]]
    assert during == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-6)
    assert report.failed == report.scrapes == 6
    assert report.last_error == "timed out after 0.2s"


async def test_a_dead_endpoint_never_fails_the_run(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeOpenAI(SCRIPT)
    endpoint = Endpoint(fake, fail=True)
    run = runner(plan_of(stage("one", 2)), fake, endpoint)
    await run.run_all()
    assert fake.calls == 2
    (report,) = run.server_metrics()
    assert (report.scrapes, report.failed) == (4, 4)
    assert report.last_error == "OSError: connection refused"
    (s,) = report.stages
    assert (s.t_before, s.t_after, s.scrapes, s.failed, s.counters) == (None, None, 0, 4, ())


async def test_a_runner_told_not_to_scrape_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(SCRIPT)
    endpoint = Endpoint(fake)
    run = runner(plan_of(stage("one", 2)), fake, endpoint, scrape_server_metrics=False)
    await run.run_all()
    assert endpoint.asked == []
    assert run.server_metrics() == ()


async def test_a_cut_off_stage_keeps_what_it_scraped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(SCRIPT)
    endpoint = Endpoint(fake)
    run = runner(plan_of(stage("one", 10)), fake, endpoint)
    with trio.move_on_after(2.5):  # in the third request
        await run.run_all()
    (report,) = run.server_metrics()
    (s,) = report.stages
    # Before it and at +1 s and +2 s; no scrape after a stage that was cancelled.
    assert len(endpoint.asked) == 3
    assert s.t_before is not None
    assert (s.t_after, s.scrapes) == (None, 3)
    assert s.counters[0].delta == 2
