from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from lens.scenario import Scenario, load_scenario
from lens.scenario.model import (
    BurstStage,
    ConcurrencyStage,
    ConstantRateStage,
    FilePrompt,
    MessagesPrompt,
    OpenAICompatibleProvider,
    OpenAIProvider,
    SimulatedProvider,
    SyntheticPrompt,
)
from lens.scenario.yaml_nodes import PathT
from tests.scenario.helpers import BASE, parse

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_quickstart() -> None:
    s = load_scenario(SCENARIOS / "quickstart.yaml", env={})
    assert s.version == 1
    assert s.name == "quickstart"
    sim = s.providers["sim"]
    assert isinstance(sim, SimulatedProvider)
    assert (sim.ttft, sim.itl, sim.output_tokens) == (0.15, 0.015, 64)
    assert [type(stage) for stage in s.load] == [BurstStage, ConstantRateStage, ConcurrencyStage]
    steady = s.load[1]
    assert isinstance(steady, ConstantRateStage)
    assert (steady.rate, steady.duration, steady.arrival) == (10.0, 5.0, "uniform")
    assert [sla.assert_ for sla in s.sla] == [
        "ttft.p95 < 400ms",
        "itl.p50 < 40ms",
        "error_rate < 1%",
    ]
    assert s.source_map.file.endswith("quickstart.yaml")


def test_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    s = load_scenario(str(SCENARIOS / "example.yaml"))  # env defaults to os.environ
    assert list(s.providers) == ["sim", "vllm", "gpt"]
    sim, vllm, gpt = s.providers.values()
    assert isinstance(sim, SimulatedProvider)
    assert (sim.errors.rate_429, sim.errors.rate_500, sim.errors.cut_stream) == (0.01, 0.005, 0.01)
    assert isinstance(vllm, OpenAICompatibleProvider)
    assert vllm.api_key is None  # ${VLLM_API_KEY:-} with the variable unset
    assert vllm.headers == {"X-Request-Source": "lens"}
    assert isinstance(gpt, OpenAIProvider)
    assert gpt.base_url == "https://api.openai.com/v1"
    capital, long, support = s.prompts
    assert isinstance(capital, MessagesPrompt)
    assert capital.weight == 2
    assert isinstance(long, SyntheticPrompt)
    assert long.synthetic.seed == 7
    assert isinstance(support, FilePrompt)
    assert [r.line for r in support.requests] == [1, 2, 3]
    assert support.requests[0].max_tokens == 50
    assert s.sla[3].provider == "vllm"
    assert s.sla[3].stage == "steady"


def test_example_reads_vllm_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vk-1")
    vllm = load_scenario(SCENARIOS / "example.yaml").providers["vllm"]
    assert isinstance(vllm, OpenAICompatibleProvider)
    assert vllm.api_key is not None
    assert vllm.api_key.get_secret_value() == "vk-1"


def test_defaults_and_short_forms() -> None:
    s = parse(BASE + "sla:\n  - ttft.p95 < 1s\n")
    assert s.description == ""
    assert s.defaults.timeout == 60.0
    assert s.defaults.max_tokens is None
    sim = s.providers["sim"]
    assert isinstance(sim, SimulatedProvider)
    assert sim.model == "lens-sim"
    assert s.sla[0].provider is None
    assert s.sla[0].stage is None


def test_models_are_frozen() -> None:
    s = parse(BASE)
    with pytest.raises(ValidationError):
        s.name = "other"


def test_positions_are_kept_for_later_stages() -> None:
    s = parse(BASE)
    path: PathT = ("load", 0, "requests")
    pos = s.source_map.value_pos(path)
    assert pos is not None
    assert (pos.file, pos.line, pos.col) == ("s.yaml", 13, 15)


def test_scenarios_built_in_code_have_an_empty_source_map() -> None:
    s = Scenario.model_validate(
        {
            "version": 1,
            "name": "code",
            "providers": {"sim": {"type": "simulated"}},
            "prompts": [{"id": "q", "messages": [{"role": "user", "content": "hi"}]}],
            "load": [{"id": "w", "pattern": "burst", "requests": 1}],
        }
    )
    assert s.source_map.value_pos(("name",)) is None
    # Model instances pass through the tagged unions as well as mappings do.
    again = Scenario.model_validate({**s.model_dump(by_alias=True), "prompts": s.prompts})
    assert again.prompts == s.prompts


def test_yaml_anchors_and_merges_work_end_to_end() -> None:
    text = """\
    version: 1
    name: t
    providers:
      a: &fast {type: simulated, ttft: 10ms, itl: 1ms}
      b:
        <<: *fast
        ttft: 20ms
    prompts:
      - {id: q, messages: [{role: user, content: hi}]}
    load:
      - {id: w, pattern: burst, requests: 1}
    """
    s = parse(text)
    a, b = s.providers.values()
    assert isinstance(a, SimulatedProvider)
    assert isinstance(b, SimulatedProvider)
    assert (a.ttft, b.ttft, b.itl) == (0.01, 0.02, 0.001)


def test_environment_interpolation_end_to_end() -> None:
    text = """\
    version: 1
    name: ${NAME:-default-name}
    providers:
      local:
        type: openai-compatible
        base_url: http://${HOST}:8000/v1
        model: ${MODEL:-m}
        api_key: ${KEY}
    prompts:
      - {id: q, messages: [{role: user, content: "costs $$5 ${KEY}"}]}
    load:
      - id: w
        pattern: constant-rate
        rate: 5/s
        requests: 10
    budget: ${BUDGET:-2.5}
    """
    s = parse(text, env={"HOST": "10.0.0.1", "KEY": "sk-x"})
    assert s.name == "${NAME:-default-name}"  # not a configuration field: literal
    local = s.providers["local"]
    assert isinstance(local, OpenAICompatibleProvider)
    assert local.base_url == "http://10.0.0.1:8000/v1"
    assert local.model == "m"
    assert local.api_key is not None
    assert local.api_key.get_secret_value() == "sk-x"
    assert s.source_map.env_variables(("providers", "local", "api_key")) == ("KEY",)
    assert s.budget == Decimal("2.5")
    stage = s.load[0]
    assert isinstance(stage, ConstantRateStage)
    assert (stage.rate, stage.requests) == (5.0, 10)
    prompt = s.prompts[0]
    assert isinstance(prompt, MessagesPrompt)
    assert prompt.messages[0].content == "costs $$5 ${KEY}"  # prompt text is never expanded
