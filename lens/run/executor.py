"""The trio executor: one nursery per stage x provider, absolute schedules, no hidden queues.

Stage units run one after another so providers never compete for the client's CPU inside
one measurement.  Open-loop stages (burst, constant-rate, ramp, a sweep over rates) sleep
until ``t0 + offset_i`` for each arrival and start the request as its own task; a
``CapacityLimiter`` (the optional ``max_concurrency`` cap) is acquired *after* the intended
time, so any wait shows up in ``dispatch_lag`` rather than vanishing.  Closed-loop stages
(concurrency, a sweep over concurrencies) run N workers; an idle probe sends one request at
a time with idle gaps between them.  A unit may ask for a pause before it starts (between
the steps of a sweep), which is outside its window (``StageWindow.pause_ns`` says how long
it was: the GPU-hour bill charges it to the unit).  Each in-flight request borrows a
one-connection transport (lens.run.pool), so no client-side connection pool can become a
second, invisible queue.

Each request is tagged with its phase (warmup, measure, cooldown) from the plan's bounds,
and the unit's window is split into one span per phase (``StageWindow.span``), so that a
phase's rates are its own requests over its own time:

* closed loop: warmup is a barrier.  Workers run the warmup requests, then start no
  other request until every warmup request has ended; the measured phase opens at that
  moment, at full concurrency, and nothing of the warmup overlaps it.  It closes when the
  first cooldown request starts (the cooldown requests keep the load on while the last
  measured ones finish, so requests started in the span are its throughput), else at the
  unit's end.
* open loop: the schedule is the point, so nothing waits: the spans are cut at the
  intended times of the first measured and the first cooldown arrival; requests counted
  in a span are its arrivals, and when the server keeps up they complete at that rate.
When a unit reaches its cutoff (its duration, else its last request sent), the requests
still in flight may run on for the unit's drain grace (unbounded for ``drain: wait``);
past it, one cancel scope cuts them off and their records say ``drained``.
"""

from __future__ import annotations

import dataclasses
import itertools
import ssl
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

import httpx
import trio

from lens.errors import ProviderError
from lens.netconfig import TlsOptions, TlsSetupError, build_ssl_context
from lens.plan.duration import CONNECT_BOUND_S
from lens.plan.model import (
    ArrivalSchedule,
    ClosedLoop,
    Conversation,
    IdleProbe,
    OpenLoop,
    Plan,
    PromptSpec,
    ProviderSpec,
    StagePlan,
    TlsSpec,
)
from lens.plan.workloads import unit_prompts
from lens.providers.base import ProviderAdapter
from lens.providers.registry import adapter_for
from lens.records import (
    ABANDONED_TURNS,
    ErrorClass,
    Phase,
    RequestRecord,
    RequestStart,
    ServerMetricsReport,
    StageWindow,
)
from lens.run.budget import BudgetGuard
from lens.run.clock import RunClock
from lens.run.gate import UnitGate
from lens.run.http11 import LeanHTTP11Transport
from lens.run.pool import TransportPool
from lens.run.readmux import ReadMux
from lens.run.request import execute_request
from lens.run.servermetrics import Fetch, ServerMetricsScraper, http_fetch
from lens.run.slastop import SlaStop


class RunProgress:
    """Counters the progress display reads; the executor and sink update them."""

    def __init__(self, plan: Plan) -> None:
        planned = [s.planned_requests for s in plan.stages]
        self.total: int | None = (
            None if any(p is None for p in planned) else sum(p for p in planned if p is not None)
        )
        self.started = 0
        self.done = 0
        self.errors = 0
        self.output_tokens = 0
        self.unit = ""

    def record(self, rec: RequestRecord) -> None:
        self.done += 1
        if not rec.ok:
            self.errors += 1
        if rec.ok and rec.output_tokens:
            self.output_tokens += rec.output_tokens


TransportFactory = Callable[[ProviderSpec], httpx.AsyncBaseTransport | None]


def _prepared_transports(unit: StagePlan) -> int:
    """Transports to build before the stage clock starts: the most that can be in flight."""
    match unit.load:
        case ClosedLoop(concurrency=concurrency):
            return concurrency
        case OpenLoop(max_concurrency=int(limit)):
            return limit
        case OpenLoop(arrivals=arrivals):
            # A burst (each wave of one) needs them all at once; a paced stage grows the
            # pool as it goes.
            return min(_most_at_once(arrivals), 1024)
        case IdleProbe():  # one at a time
            return 1


def _most_at_once(arrivals: ArrivalSchedule) -> int:
    """The most arrivals due at one instant (a burst wave), walked in O(1) memory.  A paced
    schedule generated from its parameters is not walked (an hour of it would delay the
    stage's start by seconds): its offsets rarely coincide, and the pool grows as it goes."""
    if arrivals.source is not None and arrivals.process != "burst":
        return 1 if arrivals.count else 0
    return max((sum(1 for _ in run) for _, run in itertools.groupby(arrivals)), default=0)


def _transport_factory(
    unit: StagePlan,
    spec: ProviderSpec,
    injected: httpx.AsyncBaseTransport | None,
    ssl_context: ssl.SSLContext | None,
) -> Callable[[], httpx.AsyncBaseTransport]:
    """Transports of one connection each (see lens.run.pool), with the provider's proxy,
    TLS context and keep-alive setting.

    The connection is lens's lean HTTP/1.1 transport (lens.run.http11): one read and one
    yield per network read, a third of the CPU per token of the default httpcore stack.
    Tests inject their own transport.  The per-request deadline is a trio cancel scope;
    the transport only bounds the connect.
    """
    if injected is not None:
        return lambda: injected
    connect_timeout = min(unit.timeout_s, CONNECT_BOUND_S)
    proxy = spec.proxy.rules() if spec.proxy is not None else None
    keep_alive = spec.keep_alive
    limits = spec.limits
    return lambda: LeanHTTP11Transport(
        ssl_context=ssl_context,
        connect_timeout=connect_timeout,
        proxy=proxy,
        keep_alive=keep_alive,
        max_response_bytes=limits.max_response_bytes,
    )


def _may_use_tls(spec: ProviderSpec) -> bool:
    """Whether the provider's requests can go over TLS: all but a plain http:// base URL
    (adapters without a base URL talk to their cloud's https endpoints)."""
    return spec.base_url is None or not spec.base_url.lower().startswith("http://")


class StageRunner:
    def __init__(
        self,
        plan: Plan,
        providers: Mapping[str, ProviderSpec],
        emit: Callable[[RequestRecord], None],
        *,
        clock: RunClock | None = None,
        progress: RunProgress | None = None,
        transport_for: TransportFactory | None = None,
        budget: BudgetGuard | None = None,
        sla_stop: SlaStop | None = None,
        on_start: Callable[[RequestStart], None] | None = None,
        before_unit: Callable[[int], Awaitable[float | None]] | None = None,
        scrape_server_metrics: bool = True,
        server_metrics_fetch: Fetch = http_fetch,
    ) -> None:
        self.plan = plan
        # Providers' server_metrics endpoints are scraped by this runner (False: another
        # process scrapes them, e.g. worker 0 of lens run --workers).
        self.scrape_server_metrics = scrape_server_metrics
        self._fetch = server_metrics_fetch
        self.scrapers: dict[str, ServerMetricsScraper] = {}
        # The scraper whose scrape after the last unit waits for the next gate (workers).
        self._pending_after: ServerMetricsScraper | None = None
        # Awaited with the unit's position in the plan, once it is set up and just before
        # its clock starts: worker processes start each unit together (lens.workers), and
        # shards at its planned instant (lens.run.gate).  It may return the instant (trio's
        # clock) the unit's schedule is anchored to; the unit's lateness against it is
        # reported (``StageWindow.late_ns``) and its arrivals keep their planned times.
        self.before_unit = before_unit
        self.budget = budget
        # Told of every attempt as it goes out (a worker process reports them to its
        # parent): once per request, never per read.
        self.on_start = on_start
        self.sla_stop = sla_stop
        self._running: _RunningUnit | None = None  # watched by sla_stop
        self.providers = providers
        self.progress = progress or RunProgress(plan)
        self._emit_outer = emit
        self._clock = clock
        self.transport_for = transport_for
        self.windows: list[StageWindow] = []
        # One SSL context per distinct TLS setting, for the whole run: building one loads
        # a CA bundle (tens of ms), far too slow per request or per stage.
        self._ssl: dict[TlsOptions, ssl.SSLContext] = {}
        # Every adapter is built before anything is sent: a misconfigured provider (no
        # credentials, unknown region) stops the run up front with a ProviderError,
        # rather than after earlier stages have already run.
        used = {unit.provider for unit in plan.stages}
        self.adapters: dict[str, ProviderAdapter] = {
            pid: adapter_for(spec) for pid, spec in providers.items() if pid in used
        }
        # Likewise a CA bundle or client certificate that cannot be loaded.  The default
        # context (certifi's bundle) is left for the first unit that needs it.
        for pid, spec in providers.items():
            if pid in used and spec.tls != TlsSpec():
                self._ssl_context(spec)

    @property
    def clock(self) -> RunClock:
        """The run clock, once ``start`` has started it (the only place that checks)."""
        if self._clock is None:
            raise RuntimeError("StageRunner.start() must come before running a unit")
        return self._clock

    def _ssl_context(self, spec: ProviderSpec) -> ssl.SSLContext:
        options = spec.tls.options()
        ctx = self._ssl.get(options)
        if ctx is None:
            try:
                ctx = self._ssl[options] = build_ssl_context(options)
            except TlsSetupError as exc:
                raise ProviderError(f"provider {spec.id}: tls: {exc}") from exc
        return ctx

    def scraper_for(self, spec: ProviderSpec) -> ServerMetricsScraper | None:
        """The scraper of ``spec``'s metrics endpoint (made on first use), if it has one
        and this runner scrapes."""
        if spec.server_metrics is None or not self.scrape_server_metrics:
            return None
        scraper = self.scrapers.get(spec.id)
        if scraper is None:
            scraper = ServerMetricsScraper(spec.id, spec.server_metrics, self.clock, self._fetch)
            self.scrapers[spec.id] = scraper
        return scraper

    async def _close_after(self, deadline: float | None = None) -> None:
        pending, self._pending_after = self._pending_after, None
        if pending is not None:
            await pending.after(deadline)

    async def finish(self) -> None:
        """After the last unit: worker 0 of several waits until every worker has ended it
        (a gate past the last unit), then scrapes the engines once more."""
        if self._pending_after is None:
            return
        if isinstance(self.before_unit, UnitGate):
            await self.before_unit.opened(len(self.plan.stages))
        await self._close_after()

    def server_metrics(self) -> tuple[ServerMetricsReport, ...]:
        """What every scraped endpoint said, in the plan's provider order."""
        return tuple(self.scrapers[pid].report() for pid in self.providers if pid in self.scrapers)

    def _emit(self, rec: RequestRecord) -> None:
        self.progress.record(rec)
        self._emit_outer(rec)
        if self.sla_stop is not None and self._running is not None:
            self._running.watch(rec, self.sla_stop)

    def start(self) -> None:
        """Start the run clock, once: units run by ``run_unit`` share it."""
        if self._clock is None:
            self._clock = RunClock()

    async def run_all(self) -> None:
        self.start()
        for unit in self.plan.stages:
            if not self.may_start(unit):
                return  # out of budget: later stages never start
            await self.run_unit(unit)

    def may_start(self, unit: StagePlan) -> bool:
        """Whether the budget lets ``unit`` begin (always, without one); a refusal ends
        the run: no later unit starts either.  Nor does one after an SLA stopped it."""
        if self.sla_stop is not None and self.sla_stop.tripped:
            return False
        if self.budget is None:
            return True
        return self.budget.may_start(self.providers[unit.provider], unit, self.clock.now_ns())

    async def run_unit(self, unit: StagePlan) -> None:
        clock = self.clock
        spec = self.providers[unit.provider]
        if self.budget is not None:
            self.budget.enter(spec)  # from here on, time is billed to this unit
        pause_ns = 0
        if unit.pause_before_s > 0:
            # Between the steps of a sweep: the server drains, and no window is open.
            self.progress.unit = f"pause before {unit.stage}"
            t_pause = clock.now_ns()
            await trio.sleep(unit.pause_before_s)
            pause_ns = clock.now_ns() - t_pause
        adapter = self.adapters[unit.provider]
        transport = self.transport_for(spec) if self.transport_for else None
        self.progress.unit = f"{unit.stage}/{unit.provider}"
        state = _UnitState()
        # Building transports costs time: do it before the stage clock starts, so the first
        # arrivals are not sent late because of it.
        # A plain http:// provider never opens TLS: no CA bundle to load (tens of ms of CPU).
        tls = self._ssl_context(spec) if _may_use_tls(spec) else None
        pool = TransportPool(_transport_factory(unit, spec, transport, tls))
        pool.prepare(_prepared_transports(unit))
        first = unit_prompts(self.plan.prompts, unit)[unit.prompt_for(0)]
        first_url = _first_url(adapter, first, unit)
        if first_url is not None:
            await pool.warm(first_url)
        scraper = self.scraper_for(spec)
        anchor = None
        # An adaptive sweep's steps are made as it runs: only gated runs (workers, shards:
        # never adaptive) look a unit up in the plan.
        if isinstance(self.before_unit, UnitGate) and self.scrapers:
            position = self.plan.stages.index(unit)
            # Worker 0 of several: the gate opens once every worker has ended the units
            # before, and the moment until the unit's instant is when the engine's books
            # are closed for the unit before and opened for this one.
            anchor = await self.before_unit.opened(position)
            if scraper is not None and scraper is self._pending_after:
                self._pending_after = None
                await scraper.between(unit.stage, anchor)  # one scrape: after and before
            else:
                await self._close_after(anchor)
                if scraper is not None:
                    await scraper.before(unit.stage, anchor)
            await trio.sleep_until(anchor)
        else:
            if scraper is not None:
                await scraper.before(unit.stage)  # the engine's state as the stage starts
            if self.before_unit is not None:
                anchor = await self.before_unit(self.plan.stages.index(unit))
        t_start = clock.now_ns()
        # The schedule's origin: the instant the gate named (the unit may start after it:
        # its arrivals keep their planned times, the lateness is dispatch lag), else now.
        origin = t_start if anchor is None else min(clock.ns_at(anchor), t_start)
        if unit.cutoff_s is not None and not isinstance(unit.load, OpenLoop):
            # An open loop knows its cutoff when its last arrival is sent (open_loop).
            state.cut_off_at(clock.at_ns(origin) + unit.cutoff_s, unit.drain_grace_s)
        running = _RunningUnit(self, unit, spec, adapter, pool, state, clock, origin, scraper)
        self._running = running
        ended = False
        try:
            await running.run()
            ended = True
        finally:
            if scraper is not None and not ended:
                scraper.end_stage()  # cut off: no scrape after it
            self._running = None
            with trio.CancelScope(shield=True):
                await pool.aclose()
            # Also on cancellation: the window of a partial unit is still a fact.
            window = StageWindow(
                stage=unit.stage,
                provider=unit.provider,
                t_start=t_start,
                t_end=clock.now_ns(),
                planned=unit.planned_requests,
                started=state.started,
                sweep=unit.sweep,
                # A late unit's first arrivals were due before it started: its phases
                # are cut within its window all the same.
                t_measure_start=_within(state.measure_start, t_start),
                t_measure_end=_within(state.measure_end, t_start),
                pause_ns=pause_ns,
                repetition=unit.repetition,
                late_ns=None if anchor is None else t_start - origin,
            )
            self.windows.append(window)
            if self.budget is not None:
                self.budget.unit_ended(window.t_end)
            if self.sla_stop is not None:
                self.sla_stop.unit_ended(window)  # a tripped stop: no later unit starts
        if scraper is not None:
            if isinstance(self.before_unit, UnitGate):
                # Other workers may still run this unit: its books close at the next gate.
                self._pending_after = scraper
            else:
                await scraper.after()  # after the window closed: it does not lengthen it


def _within(t_ns: int | None, t_start: int) -> int | None:
    return None if t_ns is None else max(t_ns, t_start)


class _RunningUnit:
    """One stage x provider while it runs: what its tasks share (the unit, its provider's
    spec and adapter, the transport pool, the shared state, the run clock, the unit's start,
    the budget), so each task gets only what is its own (an index, a phase, a hold)."""

    __slots__ = (
        "adapter",
        "budget",
        "clock",
        "emit",
        "limiter",
        "on_start",
        "pool",
        "progress",
        "prompts",
        "reader",
        "scraper",
        "spec",
        "state",
        "t_start",
        "unit",
    )

    def __init__(
        self,
        runner: StageRunner,
        unit: StagePlan,
        spec: ProviderSpec,
        adapter: ProviderAdapter,
        pool: TransportPool,
        state: _UnitState,
        clock: RunClock,
        t_start: int,
        scraper: ServerMetricsScraper | None = None,
    ) -> None:
        self.unit = unit
        self.scraper = scraper
        self.spec = spec
        self.adapter = adapter
        self.pool = pool
        self.state = state
        self.clock = clock
        self.t_start = t_start
        self.budget = runner.budget
        self.progress = runner.progress
        self.prompts = unit_prompts(runner.plan.prompts, unit)  # with the unit's body:
        self.emit = runner._emit
        self.on_start = runner.on_start
        # The optional max_concurrency cap of an open loop, acquired after the intended time.
        limit = unit.load.max_concurrency if isinstance(unit.load, OpenLoop) else None
        self.limiter = trio.CapacityLimiter(limit) if limit else None
        # One task reads every response body of the unit (lens.run.readmux): a token then
        # costs a read and its decoding, not a wake-up of its request's task.
        self.reader = ReadMux(clock.now_ns) if ReadMux.supported() else None

    async def run(self) -> None:
        """The unit's load, every request of it inside the drain scope; the reader task
        outlives them all (it is cancelled once the last request has ended)."""
        async with trio.open_nursery() as io:
            if self.reader is not None:
                io.start_soon(self.reader.run)
            if self.scraper is not None:
                # On its own connection, every interval while the load runs.
                io.start_soon(self.scraper.during, self.t_start)
            try:
                with self.state.drain:
                    async with trio.open_nursery() as nursery:
                        await self._load(nursery)
            finally:
                io.cancel_scope.cancel()

    def watch(self, rec: RequestRecord, stop: SlaStop) -> None:
        """Show ``stop`` a record of this unit; halt the unit if it stops the run."""
        state = self.state
        origin = self.t_start
        if not self.unit.phases.pooled and state.measure_start is not None:
            origin = state.measure_start
        if stop.observe(rec, state.in_flight, origin):
            self.halt()

    def halt(self) -> None:
        """Stop the unit early (an SLA with stop_on_fail failed): nothing more is sent,
        and what is in flight is cut off by the unit's drain policy, from now."""
        self.state.halted = True
        self.state.schedule.cancel()
        self.state.cut_off_at(trio.current_time(), self.unit.drain_grace_s)

    async def _load(self, nursery: trio.Nursery) -> None:
        match self.unit.load:
            case OpenLoop() as load:
                with self.state.schedule:  # halt() wakes the schedule's sleep
                    await self.open_loop(nursery, load)
            case ClosedLoop() as load:
                for _ in range(load.concurrency):
                    nursery.start_soon(self.worker, load)
            case IdleProbe(gaps_s=gaps):
                await self.idle_probe(gaps)

    def _hold(self, prompt: PromptSpec) -> Decimal | None:
        """Budget held for one more attempt (0 without a budget); None: do not send."""
        if self.state.halted:
            return None
        if self.budget is None:
            return Decimal(0)
        return self.budget.try_reserve(self.spec, self.unit, prompt, self.clock.now_ns())

    def _may_wait(self, until_ns: int) -> bool:
        """Whether the budget lets the unit wait (paid GPU time) until ``until_ns``."""
        if self.state.halted:
            return False
        return self.budget is None or self.budget.may_wait(until_ns)

    def _started(self) -> None:
        self.state.started += 1
        self.progress.started += 1

    async def open_loop(self, nursery: trio.Nursery, load: OpenLoop) -> None:
        unit, state, t_start = self.unit, self.state, self.t_start
        base = self.clock.at_ns(t_start)
        # A shard's arrival j is the plan's arrival first + j * step (lens.plan.split):
        # it keeps that index, for its prompt, its phase and its record.
        first, step = load.first_index, load.index_step
        for j, offset in enumerate(load.arrivals):
            i = first + j * step
            if not self._may_wait(t_start + round(offset * 1e9)):
                return  # waiting for this arrival could overspend: in-flight ones finish
            due = base + offset
            # Looked up before the wait: a trace's prompt is made now (lens.plan.trace), so
            # making its text does not make it late.
            prompt = self.prompts[unit.prompt_for(i)]
            if trio.current_time() < due:
                await _until(due, unit.spin_s)  # absolute: lateness never accumulates
            else:
                # Due already (the loop is behind): a sleep would only cost a cancel scope
                # and a Cancelled raised into this task; one schedule point lets the
                # requests started so far go out, in order, before this one.
                await trio.lowlevel.checkpoint()
            held = self._hold(prompt)
            if held is None:
                return  # out of budget: in-flight requests finish, no new ones start
            t_intended = t_start + round(offset * 1e9)
            phase = state.enter(unit.phases.phase_of(i, offset), t_intended)
            nursery.start_soon(self._one, i, t_intended, held, phase)
            self._started()
        # The cutoff is the planned end, or now if the last arrival went out after it.
        cutoff = base + unit.cutoff_s if unit.cutoff_s is not None else trio.current_time()
        state.cut_off_at(max(cutoff, trio.current_time()), unit.drain_grace_s)

    async def idle_probe(self, idle_gaps_s: tuple[float, ...]) -> None:
        """One request, then one more after each idle gap, counted from the previous
        request's end (its last attempt's): nothing is in flight while the provider idles."""
        for index, gap in enumerate((0.0, *idle_gaps_s)):
            if not self._may_wait(self.clock.now_ns() + round(gap * 1e9)):
                return  # the idle gap alone could overspend
            await trio.sleep(gap)
            prompt = self.prompts[self.unit.prompt_for(index)]
            held = self._hold(prompt)
            if held is None:
                return
            self._started()
            await self._request_or_session(prompt, index, None, held, "measure")

    async def _one(self, index: int, t_intended: int, held: Decimal, phase: Phase) -> None:
        prompt = self.prompts[self.unit.prompt_for(index)]
        limiter = self.limiter
        if limiter is None:
            await self._request_or_session(prompt, index, t_intended, held, phase)
            return
        try:
            await limiter.acquire()
        except trio.Cancelled:
            # Cut off (drain, Ctrl-C) while waiting for a slot: it was due and never went
            # out.  Recorded, so the wait is not hidden; it cost nothing.
            self._never_sent(prompt, index, t_intended, held, phase)
            raise
        try:
            await self._request_or_session(prompt, index, t_intended, held, phase)
        finally:
            limiter.release()

    async def _request_or_session(
        self,
        prompt: PromptSpec,
        index: int,
        t_intended: int | None,
        held: Decimal,
        phase: Phase,
    ) -> None:
        """One scheduled unit of work: a request, or a whole conversation (a session)."""
        if prompt.conversation is None:
            await self._send(prompt, index, t_intended, held, phase)
        else:
            await self._session(prompt, prompt.conversation, index, t_intended, held, phase)

    async def _session(
        self,
        prompt: PromptSpec,
        conv: Conversation,
        index: int,
        t_intended: int | None,
        held: Decimal,
        phase: Phase,
    ) -> None:
        """A conversation, turn after turn: each turn sends the history so far (the model's
        replies, or the reference ones) ``think`` seconds after the previous reply ended.

        The session keeps its schedule slot (``index``) and phase; every turn is its own
        record (``session``, ``turn``).  Turn 1 has the arrival's intended time (None in a
        closed loop); a later turn's ``t_intended`` is the previous end + its think time,
        which pacing leaves out (lens.metrics.pacing reads turn 1 only).  A turn that fails
        ends the session: its record says how many turns were left unsent
        (``extra.abandoned_turns``).  A session cut off while thinking (drain, Ctrl-C, the
        budget, an SLA stop) records its next turn as never sent, with the same count.
        """
        lead = prompt.messages[:-1]
        replies: list[str] = []
        last = len(conv.turns)
        clock = self.clock
        for turn in range(1, last + 1):
            keep = conv.carry == "responses" and turn < last
            messages = prompt.messages if turn == 1 else conv.history(lead, replies, turn)
            turn_prompt = dataclasses.replace(
                prompt,
                messages=messages,
                conversation=None,
                keep_reply=keep,
                turn=turn,
                input_tokens=prompt.input_tokens if turn == 1 else None,
            )
            if turn > 1:
                next_hold = self._hold(turn_prompt)
                if next_hold is None:
                    self._turns_not_sent(prompt.id, index, turn, t_intended, phase, last - turn + 1)
                    return
                held = next_hold
            rec, text = await self._send(
                turn_prompt, index, t_intended, held, phase, session=index, turns=last
            )
            if rec is None or not rec.ok or turn == last:
                return  # a failed turn's record already counts the turns left
            reply = text if conv.carry == "responses" else conv.replies[turn - 1]
            if reply is None:
                # Nothing to carry: the adapter kept no reply text (a protocol lens does
                # not yet read replies of), or the dataset has no reference reply here.
                why = "no reply text to carry (" + (
                    f"the {self.spec.type} adapter keeps none: use carry: reference)"
                    if conv.carry == "responses"
                    else "the dataset has no reference reply for this turn)"
                )
                self._turns_not_sent(prompt.id, index, turn + 1, None, phase, last - turn, why)
                return
            replies.append(reply)
            t_intended = rec.t_end + round(conv.think_s(index, turn + 1) * 1e9)
            if not self._may_wait(t_intended):
                self._turns_not_sent(prompt.id, index, turn + 1, t_intended, phase, last - turn)
                return
            try:
                await trio.sleep_until(clock.at_ns(t_intended))
            except trio.Cancelled:
                self._turns_not_sent(prompt.id, index, turn + 1, t_intended, phase, last - turn)
                raise

    def _turns_not_sent(
        self,
        prompt_id: str,
        index: int,
        turn: int,
        t_intended: int | None,
        phase: Phase,
        left: int,
        why: str | None = None,
    ) -> None:
        """The session ended before turn ``turn`` went out: one record for that turn,
        ``cancelled``/``drained`` (lens's own doing: no error rate counts it), with the
        turns left unsent, itself included, in ``extra.abandoned_turns``."""
        drained = self.state.drain.cancel_called
        if why is None:
            by = "the stage's cutoff" if drained else "the run stopping"
            why = f"session ended by {by} before this turn; never sent"
        rec = self._unsent(prompt_id, index, t_intended, phase, why)
        self.emit(
            dataclasses.replace(rec, extra={ABANDONED_TURNS: str(left)}, session=index, turn=turn)
        )

    def _unsent(
        self, prompt_id: str, index: int, t_intended: int | None, phase: Phase, why: str
    ) -> RequestRecord:
        """The record of a request that never went out: ``drained`` when the stage's cutoff
        stopped it, else ``cancelled`` (lens's own doing: no error rate counts either)."""
        now = self.clock.now_ns()
        return RequestRecord(
            provider=self.unit.provider,
            stage=self.unit.stage,
            prompt=prompt_id,
            index=index,
            ok=False,
            error_class=(
                ErrorClass.DRAINED if self.state.drain.cancel_called else ErrorClass.CANCELLED
            ),
            error_message=why,
            http_status=None,
            t_intended=t_intended,
            t_dispatch=now,
            t_headers=None,
            t_first_chunk=None,
            t_first_token=None,
            t_first_visible=None,
            t_last_token=None,
            t_end=now,
            phase=phase,
        )

    def _never_sent(
        self, prompt: PromptSpec, index: int, t_intended: int, held: Decimal, phase: Phase
    ) -> None:
        drained = self.state.drain.cancel_called
        why = (
            "waited for a max_concurrency slot until the "
            + ("stage's cutoff" if drained else "run was interrupted")
            + "; never sent"
        )
        rec = self._unsent(prompt.id, index, t_intended, phase, why)
        rec = dataclasses.replace(rec, prefix_group=prompt.prefix_group)
        if prompt.conversation is not None:  # a whole session that never started
            left = str(len(prompt.conversation.turns))
            rec = dataclasses.replace(rec, session=index, turn=1, extra={ABANDONED_TURNS: left})
        if self.budget is not None:
            self.budget.release(held)
        self.emit(rec)

    async def _send(
        self,
        prompt: PromptSpec,
        index: int,
        t_intended: int | None,
        held: Decimal,
        phase: Phase,
        *,
        session: int | None = None,
        turns: int = 0,
    ) -> tuple[RequestRecord | None, str | None]:
        """One request, and its retries if the stage asks for them: the last attempt's
        record and, for a conversation's turn that keeps it, its reply text.

        Every attempt is emitted as its own record (``attempt`` 1, 2, ...) the moment it
        ends, cancelled ones included, so retries are never hidden from any rate.  Only the
        first attempt is on the schedule; a retry has no intended time.  ``held`` is the
        budget reserved for the first attempt; each retry reserves its own.  An attempt cut
        off by the unit's drain is ``drained``, not ``cancelled`` (lens's own interruption).
        A conversation's turn (``session``; ``turns`` in all) is tagged with its session
        and turn, and the final failed attempt of a turn before the last says how many
        turns its session leaves unsent (``extra.abandoned_turns``).
        """
        unit, state, spec, budget = self.unit, self.state, self.spec, self.budget
        attempt = 1
        last: list[RequestRecord] = []

        def emit(rec: RequestRecord) -> None:
            if rec.error_class is ErrorClass.CANCELLED and state.drain.cancel_called:
                rec = dataclasses.replace(
                    rec,
                    error_class=ErrorClass.DRAINED,
                    error_message=f"in flight at the stage's cutoff (drain: {unit.drain})",
                )
            if attempt > 1 or phase != "measure":
                rec = dataclasses.replace(rec, attempt=attempt, phase=phase)
            if session is not None:
                rec = self._turn_record(rec, session, prompt.turn or 1, turns, attempt)
            last.append(rec)
            state.in_flight -= 1
            if budget is not None:
                budget.settle(held, rec, spec)
            self.emit(rec)

        on_start, pool = self.on_start, self.pool
        while True:
            state.in_flight += 1  # until its record is emitted
            if on_start is not None:
                on_start(
                    RequestStart(
                        unit.stage,
                        unit.provider,
                        prompt.id,
                        index,
                        attempt,
                        phase,
                        t_intended if attempt == 1 else None,
                        self.clock.now_ns(),
                    )
                )
            transport = pool.take()
            try:
                text = await execute_request(
                    transport,
                    self.adapter,
                    prompt,
                    clock=self.clock,
                    stage=unit.stage,
                    index=index,
                    t_intended=t_intended if attempt == 1 else None,
                    timeout_s=unit.timeout_s,
                    max_tokens=unit.max_tokens,
                    emit=emit,
                    reader=self.reader,
                )
            finally:
                pool.give(transport)
            wait_s = self._retry_wait_s(last[-1], attempt)
            if wait_s is None:
                return last[-1], text
            if not self._may_wait(self.clock.now_ns() + round(wait_s * 1e9)):
                return last[-1], None  # the back-off alone could overspend
            await trio.sleep(wait_s)
            next_hold = self._hold(prompt)
            if next_hold is None:
                return last[-1], None
            held = next_hold
            attempt += 1

    def _turn_record(
        self, rec: RequestRecord, session: int, turn: int, turns: int, attempt: int
    ) -> RequestRecord:
        """``rec`` tagged as turn ``turn`` of ``session``; a failure that ends the session
        (no retry follows) also counts the turns it leaves unsent."""
        extra = rec.extra
        if not rec.ok and turn < turns and self._retry_wait_s(rec, attempt) is None:
            extra = {**extra, ABANDONED_TURNS: str(turns - turn)}
        return dataclasses.replace(rec, session=session, turn=turn, extra=extra)

    def _retry_wait_s(self, rec: RequestRecord, attempt: int) -> float | None:
        """The back-off before retrying ``rec``, the record of attempt ``attempt``; None
        if the stage's retry policy does not retry it."""
        policy = self.unit.retries
        if policy is None or rec.ok or attempt > policy.max_retries:
            return None
        if rec.error_class is None or rec.error_class.value not in policy.on:
            return None
        hint = rec.extra.get("retry_after_s")
        return policy.wait_s(attempt, float(hint) if hint else None)

    async def worker(self, load: ClosedLoop) -> None:
        """One closed-loop client: the next request as soon as its previous one ended.

        Warmup is a barrier: no worker starts a measured (or cooldown) request while a
        warmup request is still in flight, so the measured phase runs at full concurrency
        from the moment the last warmup request ended, and no warmup request overlaps it.
        """
        unit, state, t_start, clock = self.unit, self.state, self.t_start, self.clock
        stop_at = t_start + round(load.duration_s * 1e9) if load.duration_s is not None else None
        while True:
            if load.requests is not None and state.started >= load.requests:
                return
            now = clock.now_ns()
            if stop_at is not None and now >= stop_at:
                return
            index = state.started
            phase = unit.phases.phase_of(index, (now - t_start) / 1e9)
            if phase != "warmup" and state.warmup_in_flight:
                await state.warmup_ended.park()
                continue  # it is later now: the stage may have ended meanwhile
            prompt = self.prompts[unit.prompt_for(index)]
            held = self._hold(prompt)
            if held is None:
                return
            self._started()
            if load.requests is not None and state.started == load.requests:
                # The last request is on its way: the unit's cutoff, unless its duration
                # ends it earlier.
                state.cut_off_at(trio.current_time(), unit.drain_grace_s)
            state.enter(phase, now)
            if phase != "warmup":
                await self._request_or_session(prompt, index, None, held, phase)
                continue
            state.warmup_in_flight += 1
            try:
                await self._request_or_session(prompt, index, None, held, phase)
            finally:
                state.warmup_done(clock.now_ns())


class _UnitState:
    """What the tasks of one running unit share: requests started, where the measured
    phase began and ended, the closed loop's warmup barrier, and the drain scope around
    every request in flight."""

    __slots__ = (
        "drain",
        "halted",
        "in_flight",
        "measure_end",
        "measure_start",
        "schedule",
        "started",
        "warmup_ended",
        "warmup_in_flight",
    )

    def __init__(self) -> None:
        self.started = 0
        self.measure_start: int | None = None
        self.measure_end: int | None = None
        self.drain = trio.CancelScope()
        # An SLA stopped the run (lens.run.slastop): the schedule's wait is cancelled, and
        # nothing more is sent.  in_flight: attempts sent whose record is not out yet.
        self.halted = False
        self.schedule = trio.CancelScope()
        self.in_flight = 0
        # Closed loops: warmup requests in flight, and the workers waiting for them to end.
        self.warmup_in_flight = 0
        self.warmup_ended = trio.lowlevel.ParkingLot()

    def enter(self, phase: Phase, t_ns: int) -> Phase:
        """Note the start of a request of ``phase`` at ``t_ns`` (run clock)."""
        if phase == "measure" and self.measure_start is None:
            self.measure_start = t_ns
        elif phase == "cooldown" and self.measure_end is None:
            self.measure_end = t_ns
        return phase

    def warmup_done(self, t_ns: int) -> None:
        """A closed loop's warmup request ended at ``t_ns`` (its last attempt's end).

        The measured phase opens when the last warmup request ends: every later request
        waits for it (the barrier in ``_worker``), so the latest end seen is that moment.
        """
        self.warmup_in_flight -= 1
        self.measure_start = t_ns
        if not self.warmup_in_flight:
            self.warmup_ended.unpark_all()

    def cut_off_at(self, cutoff: float, grace_s: float | None) -> None:
        """Cut requests in flight off ``grace_s`` after ``cutoff`` (trio time); never
        later than an earlier cutoff, and never with no grace limit (``drain: wait``)."""
        if grace_s is not None:
            self.drain.deadline = min(self.drain.deadline, cutoff + grace_s)


def _first_url(adapter: ProviderAdapter, prompt: PromptSpec, unit: StagePlan) -> httpx.URL | None:
    """Where the unit's first request goes, to warm a connection to; None if lens cannot
    build that request: then every request of the unit is a record that says why."""
    try:
        return adapter.build_request(prompt, unit.max_tokens).url
    except Exception:
        return None


async def _until(deadline: float, spin_s: float) -> None:
    """Sleep until ``deadline`` on the trio clock.  With ``spin_s``, wake that much early
    and yield to the scheduler until the deadline: other tasks keep running, and the
    send is not up to a millisecond late because epoll rounds its timeouts up.  (A
    MockClock never advances while a task spins: schedule tests use ``spin_s=0``.)"""
    if spin_s <= 0:
        await trio.sleep_until(deadline)
        return
    await trio.sleep_until(deadline - spin_s)
    while trio.current_time() < deadline:
        await trio.lowlevel.checkpoint()
