"""Shared helpers: load scenario text and get problems back as 'file:line:col: path: msg'."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from lens.errors import ScenarioError
from lens.scenario import Scenario, parse_scenario

FILE = "s.yaml"

# A minimal valid scenario; tests append to it or write their own.
BASE = """\
version: 1
name: t
providers:
  sim:
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


def parse(
    text: str, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Scenario:
    return parse_scenario(
        textwrap.dedent(text), file=FILE, env=env or {}, base_dir=base_dir or Path(".")
    )


def problems(
    text: str, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse(text, env, base_dir)
    return [str(p) for p in info.value.problems]


def only_problem(text: str, env: Mapping[str, str] | None = None) -> str:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]
