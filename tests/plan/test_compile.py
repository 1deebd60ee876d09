from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.errors import PlanError
from lens.plan import compile as compile_module
from lens.plan.arrivals import RateProfile, paced_arrivals
from lens.plan.compile import (
    PromptGroup,
    compile_plan,
    prompt_cycle,
    smooth_weighted_round_robin,
)
from lens.plan.model import (
    ArrivalSchedule,
    ClosedLoop,
    OpenAISettings,
    OpenLoop,
    Plan,
    ProviderSpec,
    Secret,
    SimSettings,
    StagePlan,
)
from lens.scenario import Scenario, load_scenario, parse_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"
ENV = {"OPENAI_API_KEY": "sk-test-not-real"}
# Every credential the shipped scenarios need (scenarios/providers.yaml declares them all).
SHIPPED_ENV = {
    **ENV,
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "g-test",
    "AZURE_OPENAI_API_KEY": "az-test",
}

BASE = """\
version: 1
name: t
providers:
  sim:
    type: simulated
  other:
    type: simulated
prompts:
  - id: q
    messages:
      - {role: user, content: hi}
load:
  - id: warm
    pattern: burst
    requests: 2
"""


def plan_of(text: str, env: dict[str, str] | None = None) -> Plan:
    return compile_plan(parse_scenario(text, file="s.yaml", env={}), env=env or {})


def arrivals_of(unit: StagePlan) -> ArrivalSchedule:
    """The schedule of an open-loop unit."""
    assert isinstance(unit.load, OpenLoop), unit.load
    return unit.load.arrivals


def plan_problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan_of(text, env)
    return [str(p) for p in info.value.problems]


# --- whole scenarios -----------------------------------------------------------------------


def test_quickstart_plan() -> None:
    plan = compile_plan(load_scenario(SCENARIOS / "quickstart.yaml", env={}), env={})
    assert plan.name == "quickstart"
    assert plan.source.endswith("scenarios/quickstart.yaml")
    assert plan.providers == {
        "sim": ProviderSpec(
            id="sim",
            type="simulated",
            model="lens-sim",
            base_url=None,
            settings=SimSettings(ttft_s=0.15, itl_s=0.015, output_tokens=64),
        )
    }
    warm, steady, closed = plan.stages
    assert [(s.stage, s.provider, s.pattern) for s in plan.stages] == [
        ("warm", "sim", "burst"),
        ("steady", "sim", "constant-rate"),
        ("closed", "sim", "concurrency"),
    ]
    assert isinstance(warm.load, OpenLoop)
    assert warm.load.arrivals.offsets_s == (0.0,) * 20
    assert isinstance(steady.load, OpenLoop)
    assert steady.load.arrivals.offsets_s == tuple(i / 10.0 for i in range(50))
    assert steady.load.max_concurrency is None
    assert closed.load == ClosedLoop(concurrency=8, requests=80, duration_s=None)
    assert all(s.timeout_s == 30.0 and s.max_tokens == 64 for s in plan.stages)
    assert warm.prompts == ("capital", "haiku")
    assert [sla.expr.text for sla in plan.slas] == [
        "ttft.p95 < 400ms",
        "itl.p50 < 40ms",
        "error_rate < 1%",
    ]
    assert plan.slas[0].where.endswith("quickstart.yaml:60:5")
    # Offline and quick: the whole run is bounded well under 30 s.
    assert sum(s.load.arrivals.span_s for s in plan.stages if isinstance(s.load, OpenLoop)) < 10


def test_example_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    plan = compile_plan(load_scenario(SCENARIOS / "example.yaml"), source="given.yaml")
    assert plan.source == "given.yaml"
    assert [(s.stage, s.provider) for s in plan.stages] == [
        ("warm", "sim"),
        ("warm", "vllm"),
        ("warm", "gpt"),
        ("steady", "sim"),
        ("steady", "vllm"),
        ("steady", "gpt"),
        ("closed", "sim"),
        ("closed", "vllm"),
    ]
    gpt = plan.providers["gpt"]
    assert gpt.api_key is not None
    assert gpt.api_key.reveal() == "sk-test-not-real"
    assert gpt.api_key.source == "${OPENAI_API_KEY}"
    assert gpt.settings == OpenAISettings("max_completion_tokens", include_usage=True)
    vllm = plan.providers["vllm"]
    assert vllm.api_key is None
    assert vllm.headers == (("X-Request-Source", "lens"),)
    sim = plan.providers["sim"]
    assert sim.model == "sim-1"
    assert isinstance(sim.settings, SimSettings)
    assert (sim.settings.jitter, sim.settings.error_429, sim.settings.seed) == (0.1, 0.01, 1)

    assert list(plan.prompts) == ["capital", "long", "support#1", "support#2", "support#3"]
    assert plan.prompts["capital"].source == "inline"
    assert plan.prompts["capital"].weight == 2.0
    long = plan.prompts["long"]
    assert (long.source, long.max_tokens) == ("synthetic(seed=7)", 200)
    assert len(long.messages[0].content) == 4000
    assert plan.prompts["support#3"].source == "prompts/support.jsonl:3"
    assert plan.prompts["support#1"].max_tokens == 50

    steady = plan.stages[3]
    assert isinstance(steady.load, OpenLoop)
    assert steady.load.arrivals.count == 100
    assert steady.load.max_concurrency == 32
    assert (steady.timeout_s, steady.max_tokens) == (30.0, 128)
    closed = plan.stages[6]
    assert (closed.timeout_s, closed.max_tokens) == (60.0, 256)
    assert closed.prompts == (
        "capital", "support#1", "capital",
        "capital", "support#2", "capital",
        "capital", "support#3", "capital",
    )  # fmt: skip
    scoped = plan.slas[3]
    assert (scoped.provider, scoped.stage, scoped.scope) == (
        "vllm",
        "steady",
        "provider=vllm stage=steady",
    )
    assert scoped.expr.threshold == 10_000.0


def test_compile_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    scenario = load_scenario(SCENARIOS / "example.yaml", env={})
    with pytest.raises(PlanError, match="has no api key: set OPENAI_API_KEY"):
        compile_plan(scenario)


# --- secrets -------------------------------------------------------------------------------

OPENAI = BASE.replace("  other:\n    type: simulated\n", "  gpt:\n    type: openai\n    model: m\n")


def test_openai_key_missing_names_variable_and_provider() -> None:
    assert plan_problems(OPENAI) == [
        "s.yaml:6:3: providers.gpt: openai provider 'gpt' has no api key: set OPENAI_API_KEY, "
        "or give api_key:"
    ]
    assert plan_problems(OPENAI, {"OPENAI_API_KEY": ""})[0].endswith(
        "has no api key: set OPENAI_API_KEY, or give api_key:"
    )


def test_explicit_key_records_its_variables_not_its_value() -> None:
    text = OPENAI.replace("model: m\n", "model: m\n    api_key: ${MY_KEY:-sk-default}\n")
    scenario = parse_scenario(text, file="s.yaml", env={})
    key = compile_plan(scenario, env={}).providers["gpt"].api_key
    assert key is not None
    assert (key.reveal(), key.source) == ("sk-default", "${MY_KEY}")
    assert "sk-default" not in repr(key)


def test_inline_key_source_says_inline() -> None:
    text = OPENAI.replace("model: m\n", "model: m\n    api_key: sk-inline\n")
    key = plan_of(text).providers["gpt"].api_key
    assert key is not None
    assert key.source == "inline"
    assert key.reveal() == "sk-inline"


def test_empty_openai_key_is_an_error() -> None:
    text = OPENAI.replace("model: m\n", "model: m\n    api_key: '${K:-}'\n")
    assert plan_problems(text) == [
        "s.yaml:9:14: providers.gpt.api_key: openai provider 'gpt' has an empty api_key (from ${K})"
    ]


def test_openai_compatible_key_is_optional_and_empty_means_none() -> None:
    compat = "    type: openai-compatible\n    base_url: http://127.0.0.1:1/v1\n    model: m\n"
    text = BASE.replace("    type: simulated\n  other", compat + "  other", 1)
    assert plan_of(text).providers["sim"].api_key is None
    text_empty = text.replace("model: m\n", "model: m\n    api_key: ''\n")
    assert plan_of(text_empty).providers["sim"].api_key is None
    text_set = text.replace("model: m\n", "model: m\n    api_key: ${K}\n")
    key = compile_plan(parse_scenario(text_set, env={"K": "v"}), env={}).providers["sim"].api_key
    assert key == Secret("v", source="${K}")


# --- references ----------------------------------------------------------------------------


def test_unknown_references_are_positioned_and_all_reported() -> None:
    text = BASE.replace(
        "    requests: 2\n",
        "    requests: 2\n    providers: [sim, simm]\n    prompts: [q, qq]\n",
    ) + (
        "sla:\n"
        "  - {assert: 'ttft.p95 < 1s', provider: nope}\n"
        "  - {assert: 'ttft.p95 < 1s', stage: wram}\n"
    )
    assert plan_problems(text) == [
        "s.yaml:16:22: load[0].providers[1]: unknown provider 'simm' (did you mean 'sim'?); "
        "known providers: 'sim', 'other'",
        "s.yaml:17:18: load[0].prompts[1]: unknown prompt 'qq' (did you mean 'q'?); "
        "known prompts: 'q'",
        "s.yaml:19:41: sla[0].provider: unknown provider 'nope'; known providers: 'sim', 'other'",
        "s.yaml:20:38: sla[1].stage: unknown stage 'wram' (did you mean 'warm'?); "
        "known stages: 'warm'",
    ]


def test_sla_on_a_provider_its_stage_does_not_run() -> None:
    text = BASE.replace("    requests: 2\n", "    requests: 2\n    providers: [sim]\n")
    text += "sla:\n  - {assert: 'ttft.p95 < 1s', provider: other, stage: warm}\n"
    assert plan_problems(text) == [
        "s.yaml:18:5: sla[0]: stage 'warm' does not run provider 'other' (it runs 'sim'), "
        "so this SLA could never be judged"
    ]


def test_stage_provider_and_prompt_restrictions_keep_listed_order() -> None:
    text = BASE.replace(
        "    requests: 2\n", "    requests: 2\n    providers: [other, sim]\n"
    ).replace(
        "prompts:\n", "prompts:\n  - id: z\n    synthetic: {input_tokens: 3, output_tokens: 2}\n"
    )
    text = text.replace(
        "    providers: [other, sim]\n", "    providers: [other, sim]\n    prompts: [q, z]\n"
    )
    plan = plan_of(text)
    assert [s.provider for s in plan.stages] == ["other", "sim"]
    assert plan.stages[0].prompts == ("q", "z")


def test_duplicates_in_scenarios_built_in_code_are_caught() -> None:
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "code",
            "providers": {"sim": {"type": "simulated"}},
            "prompts": [
                {"id": "q", "messages": [{"role": "user", "content": "a"}]},
                {"id": "q", "messages": [{"role": "user", "content": "b"}]},
            ],
            "load": [{"id": "w", "pattern": "burst", "requests": 1}],
        }
    )
    with pytest.raises(PlanError, match="duplicate prompt id 'q'"):
        compile_plan(scenario, env={})


def test_file_prompt_never_read_is_caught() -> None:
    scenario = Scenario.model_validate(
        {
            "version": 1,
            "name": "code",
            "providers": {"sim": {"type": "simulated"}},
            "prompts": [{"id": "f", "file": "x.jsonl"}],
            "load": [{"id": "w", "pattern": "burst", "requests": 1}],
        }
    )
    with pytest.raises(PlanError, match="load\\[0\\]: a prompt file of this stage has no requests"):
        compile_plan(scenario, env={})


def test_defaults_flow_into_stages_and_stage_values_override() -> None:
    text = BASE + ("defaults: {timeout: 5s, max_tokens: 10}\n  - id: closed\n")
    text = BASE.replace("load:\n", "defaults: {timeout: 5s, max_tokens: 10}\nload:\n") + (
        "  - id: closed\n"
        "    pattern: concurrency\n"
        "    concurrency: 3\n"
        "    duration: 1m\n"
        "    timeout: 2s\n"
        "    max_tokens: 7\n"
    )
    plan = plan_of(text)
    warm, closed = plan.stages[0], plan.stages[2]
    assert (warm.timeout_s, warm.max_tokens) == (5.0, 10)
    assert (closed.timeout_s, closed.max_tokens) == (2.0, 7)
    assert closed.load == ClosedLoop(concurrency=3, requests=None, duration_s=60.0)
    assert closed.planned_requests is None


def test_plan_from_a_scenario_without_a_file() -> None:
    scenario = parse_scenario(BASE, env={})
    plan = compile_plan(scenario, env={})
    assert plan.source == "<scenario>"
    scenario_in_code = Scenario.model_validate(scenario.model_dump(by_alias=True))
    assert compile_plan(scenario_in_code, env={}).source == ""


def test_sla_where_falls_back_to_the_path_without_positions() -> None:
    scenario = parse_scenario(BASE + "sla: ['ttft.p50 < 1s']\n", env={})
    code = Scenario.model_validate(scenario.model_dump(by_alias=True))
    assert compile_plan(code, env={}).slas[0].where == "sla[0]"


# --- arrivals ------------------------------------------------------------------------------


def test_constant_rate_offsets_are_absolute() -> None:
    offsets = paced_arrivals(RateProfile.constant(3.0, None), requests=10_000).offsets_s
    assert offsets == tuple(i / 3.0 for i in range(10_000))
    accumulated = 0.0
    for _ in range(9_999):
        accumulated += 1 / 3.0
    assert accumulated != offsets[-1]  # what accumulation would have drifted to


@settings(deadline=None)  # parsing and compiling a stage of ~24k arrivals takes a moment
@given(
    rate=st.floats(min_value=0.05, max_value=200),
    duration=st.floats(min_value=0.1, max_value=120),
)
def test_constant_rate_schedule_properties(rate: float, duration: float) -> None:
    text = BASE.replace(
        "    pattern: burst\n    requests: 2\n",
        f"    pattern: constant-rate\n    rate: {rate!r}\n    duration: {duration!r}\n",
    )
    stage = plan_of(text).stages[0]
    assert isinstance(stage.load, OpenLoop)
    offsets = stage.load.arrivals.offsets_s
    n = len(offsets)
    assert offsets == tuple(i / rate for i in range(n))
    assert all(b > a for a, b in itertools.pairwise(offsets))
    # Every arrival due before the end, and only those: the next would be due at the end.
    assert offsets[-1] < duration
    assert n / rate >= duration * (1 - 2e-9)


# --- weighted round-robin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "cycle"),
    [
        ([("a", 2), ("b", 1)], "aba"),
        ([("a", 1), ("b", 1), ("c", 1)], "abc"),
        ([("a", 4), ("b", 2)], "aba"),  # divided by the gcd
        ([("a", 5), ("b", 1), ("c", 1)], "aabacaa"),  # nginx's documented example
        ([("a", 1), ("b", 3)], "babb"),
        ([("a", 7)], "a"),
        ([], ""),
    ],
)
def test_smooth_weighted_round_robin(weights: list[tuple[str, int]], cycle: str) -> None:
    assert "".join(smooth_weighted_round_robin(weights)) == cycle


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=6))
def test_round_robin_shares_match_weights(weights: list[int]) -> None:
    named = [(chr(ord("a") + i), w) for i, w in enumerate(weights)]
    cycle = smooth_weighted_round_robin(named)
    divisor = math.gcd(*weights)
    assert len(cycle) == sum(weights) // divisor
    for name, weight in named:
        assert cycle.count(name) == weight // divisor


def test_prompt_cycle_rotates_file_lines_within_their_slot() -> None:
    groups = [PromptGroup(1, ("a",)), PromptGroup(1, ("f#1", "f#2", "f#3"))]
    assert prompt_cycle(groups) == ("a", "f#1", "a", "f#2", "a", "f#3")


def test_prompt_cycle_wraps_every_file_exactly() -> None:
    groups = [PromptGroup(1, ("x#1", "x#2")), PromptGroup(1, ("y#1", "y#2", "y#3"))]
    cycle = prompt_cycle(groups)
    assert len(cycle) == 12  # lcm(2, 3) turns of the two slots
    assert cycle[:6] == ("x#1", "y#1", "x#2", "y#2", "x#1", "y#3")


def test_prompt_cycle_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_module, "MAX_CYCLE", 10)
    groups = [PromptGroup(1, ("x#1", "x#2")), PromptGroup(1, ("y#1", "y#2", "y#3"))]
    cycle = prompt_cycle(groups)
    assert len(cycle) == 6  # each line at least once
    assert set(cycle) == {"x#1", "x#2", "y#1", "y#2", "y#3"}


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_loads_and_compiles(path: Path) -> None:
    plan = compile_plan(load_scenario(path, env={}), env=SHIPPED_ENV)
    assert plan.stages
    assert all(stage.prompts or stage.trace is not None for stage in plan.stages)
