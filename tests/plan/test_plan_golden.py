"""The plan as lens shows it, pinned: ``lens plan --json``, the ``plan`` section of
results.json and ``lens plan``'s text for the shipped scenarios and for golden scenarios
covering every load pattern and provider type (a plugin's included).

A change of the plan's structure must not change what it shows.  After an intended change
of output, regenerate with ``LENS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/plan/test_plan_golden.py``
and review the diff of ``tests/plan/golden/*.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import lens.entry_points
from lens.api import describe_plan
from lens.export.plan_view import plan_text
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plugins import rediscover
from lens.redact import Redactor
from lens.scenario import load_scenario
from tests.plugins.conftest import EXAMPLE_PROVIDER, EXAMPLE_SRC

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).parent / "golden"
# Every default credential and region set, and a proxy from the environment (with a
# password, which must never show) that one provider is exempt from.
ENV = {
    "OPENAI_API_KEY": "sk-golden-openai-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-golden-0123456789",
    "GEMINI_API_KEY": "gem-golden-0123456789",
    "AZURE_OPENAI_API_KEY": "azure-golden-0123456789",
    "AZURE_OPENAI_AD_TOKEN": "entra-golden-0123456789",
    "AWS_REGION": "us-east-2",
    "HTTPS_PROXY": "http://user:proxy-pw-golden@corp.example:8080",
    "NO_PROXY": "bedrock.example.com",
}
SECRETS = [v for k, v in ENV.items() if "KEY" in k or "TOKEN" in k] + [
    "proxy-pw-golden",
    "tok-123",
    "hush",
    "bedrock-bearer-xyz",
    "plugin-key-123",
    "pw@proxy",
    "influx-tok-999",
]
CASES = [f"scenarios/{p.name}" for p in sorted((ROOT / "scenarios").glob("*.yaml"))] + [
    f"tests/plan/golden/{p.name}" for p in sorted(GOLDEN.glob("*.yaml"))
]


@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plugin's provider type, as if installed (as tests/plugins/conftest.py)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    name, value = EXAMPLE_PROVIDER
    group = lens.entry_points.PROVIDER_GROUP
    found = {group: [EntryPoint(name, value, group)], lens.entry_points.EXPORTER_GROUP: []}
    monkeypatch.setattr(lens.entry_points, "entry_points", lambda group: found[group])
    rediscover()
    yield
    monkeypatch.undo()
    rediscover()


def shown(relative: str) -> dict[str, Any]:
    """What lens shows of the plan of ``relative`` (a path from the repository root)."""
    plan = compile_plan(load_scenario(Path(relative), env=ENV), env=ENV)
    results_section = Redactor.for_plan(plan, ENV).tree(plan_to_dict(plan))
    return {
        "plan --json": describe_plan(plan, arrivals=True, env=ENV),
        "results.json plan": results_section,
        "plan text": plan_text(describe_plan(plan, env=ENV)).splitlines(),
    }


@pytest.mark.parametrize("relative", CASES)
@pytest.mark.usefixtures("example_plugin")
def test_the_plan_shows_as_pinned(relative: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # paths in the plan are as given: relative, machine-independent
    # A price written in the scenario is "checked" the day the plan is compiled.
    today = json.dumps(date.today().isoformat())
    got = json.loads(json.dumps(shown(relative)).replace(today, '"<today>"'))
    text = json.dumps(got, indent=1, sort_keys=True)
    for secret in SECRETS:
        assert secret not in text
    pinned = GOLDEN / (relative.replace("/", "__").removesuffix(".yaml") + ".json")
    if os.environ.get("LENS_UPDATE_GOLDEN"):
        pinned.write_text(text + "\n", encoding="utf-8")
    assert got == json.loads(pinned.read_text(encoding="utf-8"))


def test_every_load_pattern_and_provider_type_is_pinned() -> None:
    """The golden scenarios keep covering what the plan can hold."""
    docs = [
        json.loads((GOLDEN / f"tests__plan__golden__{name}.json").read_text(encoding="utf-8"))
        for name in ("loads", "providers", "plugin")
    ]
    stages = [s for d in docs for s in d["plan --json"]["stages"]]
    providers = [p for d in docs for p in d["plan --json"]["providers"]]
    assert {s["pattern"] for s in stages} == {
        "burst", "constant-rate", "concurrency", "ramp", "sweep", "idle-probe"
    }  # fmt: skip
    assert {p["type"] for p in providers} == {
        "openai", "openai-compatible", "simulated", "anthropic", "gemini", "bedrock",
        "azure-openai", "openai-responses", "ndjson-tokens",
    }  # fmt: skip
    assert {p["sim"]["protocol"] for p in providers if "sim" in p} == {
        "openai", "openai-responses", "anthropic", "gemini", "bedrock", "azure-openai"
    }  # fmt: skip
    kinds = {a["kind"] for d in docs for a in d["plan --json"]["adaptive_sweeps"]}
    assert kinds == {"stop_when", "find_max_rate", "find_max_concurrency", "auto"}
