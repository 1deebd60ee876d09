"""Length distributions of synthetic prompts: drawn per prompt with the seed, matching their
parameters (moments over many seeded draws), and exact in tokens."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from lens.errors import ScenarioError
from lens.plan.compile import compile_plan
from lens.plan.workloads import draw_length
from lens.scenario import parse_scenario
from lens.scenario.model import LengthDist
from lens.scenario.tokenizers import ESTIMATE, HfTokenizer
from tests.workloads.tokenizers_kit import wordpiece

N = 20_000


def _draws(dist: LengthDist, seed: int = 11) -> list[int]:
    rng = random.Random(seed)
    return [draw_length(dist, rng) for _ in range(N)]


def test_normal_matches_its_mean_and_stdev() -> None:
    draws = _draws(LengthDist.model_validate({"dist": "normal", "mean": 1000, "stdev": 200}))
    # Standard error of the mean: 200 / sqrt(20000) = 1.4; of the stdev about 1.
    assert statistics.fmean(draws) == pytest.approx(1000, abs=6)
    assert statistics.pstdev(draws) == pytest.approx(200, abs=5)


def test_lognormal_takes_the_mean_and_stdev_of_the_lengths() -> None:
    draws = _draws(LengthDist.model_validate({"dist": "lognormal", "mean": 500, "stdev": 300}))
    assert statistics.fmean(draws) == pytest.approx(500, rel=0.02)
    assert statistics.pstdev(draws) == pytest.approx(300, rel=0.05)
    # Skewed right, as lengths are: the median sits below the mean.
    sigma2 = math.log1p((300 / 500) ** 2)
    assert statistics.median(draws) == pytest.approx(500 / math.exp(sigma2 / 2), rel=0.03)


def test_uniform_covers_its_range_evenly() -> None:
    draws = _draws(LengthDist.model_validate({"dist": "uniform", "min": 100, "max": 199}))
    assert min(draws) == 100
    assert max(draws) == 199
    assert statistics.fmean(draws) == pytest.approx(149.5, abs=0.6)
    assert statistics.pvariance(draws) == pytest.approx((100**2 - 1) / 12, rel=0.03)


def test_bounds_truncate_by_drawing_again() -> None:
    draws = _draws(
        LengthDist.model_validate(
            {"dist": "normal", "mean": 100, "stdev": 50, "min": 80, "max": 150}
        )
    )
    assert min(draws) >= 80
    assert max(draws) <= 150
    # Drawn again, not clamped: the bounds are not piled up.
    assert draws.count(80) < N * 0.02
    assert draws.count(150) < N * 0.02


def test_fixed_is_its_mean() -> None:
    assert set(_draws(LengthDist.model_validate({"dist": "fixed", "mean": 42}))) == {42}


def test_the_draws_are_seeded() -> None:
    dist = LengthDist.model_validate({"dist": "normal", "mean": 300, "stdev": 100})
    assert _draws(dist, 3)[:50] == _draws(dist, 3)[:50]
    assert _draws(dist, 3)[:50] != _draws(dist, 4)[:50]


SCENARIO = """\
version: 1
name: t
tokenizer: {hf: tok.json}
providers:
  sim: {type: simulated}
prompts:
  - id: syn
    synthetic:
      input_tokens: {dist: lognormal, mean: 300, stdev: 120, min: 20, max: 900}
      output_tokens: {dist: uniform, min: 10, max: 50}
      count: 200
      seed: 3
load:
  - {id: s, pattern: burst, requests: 1}
"""


def test_a_synthetic_distribution_yields_count_prompts_of_exact_drawn_lengths(
    tmp_path: Path,
) -> None:
    wordpiece(tmp_path / "tok.json")
    scenario = parse_scenario(SCENARIO, file=str(tmp_path / "s.yaml"), base_dir=tmp_path)
    plan = compile_plan(scenario, env={})
    tok = HfTokenizer(tmp_path / "tok.json", "t")
    specs = [plan.prompts[f"syn#{i}"] for i in range(1, 201)]
    assert len(plan.prompts) == 200
    for spec in specs:
        assert spec.input_tokens is not None
        assert 20 <= spec.input_tokens <= 900
        assert tok.count(spec.messages[0].content) == spec.input_tokens
        assert spec.max_tokens is not None
        assert 10 <= spec.max_tokens <= 50
    lengths = [s.input_tokens or 0 for s in specs]
    assert statistics.fmean(lengths) == pytest.approx(300, rel=0.12)
    assert len(set(lengths)) > 100
    (source,) = plan.prompt_sources
    assert source.prompts == 200
    assert source.min_tokens == min(lengths)
    assert source.max_tokens == max(lengths)
    # Every stage cycles through all 200.
    assert set(plan.stages[0].prompts) == set(plan.prompts)
    again = compile_plan(
        parse_scenario(SCENARIO, file=str(tmp_path / "s.yaml"), base_dir=tmp_path), env={}
    )
    assert again.prompts == plan.prompts


def test_with_the_estimate_a_drawn_length_is_within_one_token() -> None:
    scenario = parse_scenario(SCENARIO.replace("tokenizer: {hf: tok.json}\n", ""), file="s.yaml")
    plan = compile_plan(scenario, env={})
    for spec in plan.prompts.values():
        assert spec.input_tokens is not None
        assert abs(ESTIMATE.count(spec.messages[0].content) - spec.input_tokens) <= 1


@pytest.mark.parametrize(
    ("dist", "message"),
    [
        ("{dist: normal, mean: 10}", "dist: normal needs mean and stdev"),
        ("{dist: uniform, min: 10}", "dist: uniform needs min and max"),
        ("{dist: uniform, min: 10, max: 5}", "min 10 is above max 5"),
        ("{dist: poisson, mean: 3}", "expected one of"),
    ],
)
def test_an_incomplete_distribution_is_an_input_error(dist: str, message: str) -> None:
    text = SCENARIO.replace("tokenizer: {hf: tok.json}\n", "").replace(
        "{dist: uniform, min: 10, max: 50}", dist
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml")
    assert any(message in str(p) for p in info.value.problems), info.value.problems
