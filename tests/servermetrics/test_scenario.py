"""``server_metrics:`` in a scenario: what is accepted, and bad input named at file:line:col."""

from __future__ import annotations

import pytest

from lens.plan.compile import compile_plan
from lens.plan.model import ServerMetricsSpec
from tests.scenario.helpers import parse, problems

HEAD = """\
version: 1
name: t
providers:
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:8080/v1
    model: m
"""
TAIL = """\
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
"""


def scenario(block: str) -> str:
    return HEAD + block + TAIL


def test_defaults_and_env_in_the_url() -> None:
    text = scenario("    server_metrics: {url: 'http://${HOST}:8080/metrics'}\n")
    plan = compile_plan(parse(text, {"HOST": "10.1.2.3"}), env={})
    assert plan.providers["local"].server_metrics == ServerMetricsSpec(
        url="http://10.1.2.3:8080/metrics", every_s=1.0, timeout_s=1.0, names=()
    )


def test_every_timeout_and_names() -> None:
    block = (
        "    server_metrics:\n"
        "      url: http://127.0.0.1:8080/metrics\n"
        "      every: 5s\n"
        "      names: ['llamacpp:*', vllm:num_requests_running]\n"
    )
    spec = compile_plan(parse(scenario(block)), env={}).providers["local"].server_metrics
    assert spec is not None
    assert (spec.every_s, spec.timeout_s) == (5.0, 2.0)
    assert spec.names == ("llamacpp:*", "vllm:num_requests_running")


def test_a_simulated_provider_needs_no_url() -> None:
    text = scenario("").replace(
        "    type: openai-compatible\n    base_url: http://127.0.0.1:8080/v1\n    model: m\n",
        "    type: simulated\n    server_metrics: {every: 250ms}\n",
    )
    spec = compile_plan(parse(text), env={}).providers["local"].server_metrics
    assert spec == ServerMetricsSpec(url=None, every_s=0.25, timeout_s=0.25)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "    server_metrics: {every: 1s}\n",
            "s.yaml:8:5: providers.local.server_metrics: server_metrics: missing required "
            "field 'url'",
        ),
        (
            "    server_metrics: {url: 'ftp://x/metrics'}\n",
            "s.yaml:8:27: providers.local.server_metrics.url: expected an http:// or https://",
        ),
        (
            "    server_metrics: {url: 'http://h/metrics', every: 0s}\n",
            "s.yaml:8:54: providers.local.server_metrics.every: must be longer than zero",
        ),
        (
            "    server_metrics: {url: 'http://h/metrics', every: 1s, timeout: 3s}\n",
            "s.yaml:8:58: providers.local.server_metrics.timeout: timeout (3s) must not exceed "
            "every (1s)",
        ),
        (
            "    server_metrics: {url: 'http://h/metrics', names: ['a b']}\n",
            "s.yaml:8:55: providers.local.server_metrics.names[0]: expected a metric family "
            "name or a glob of them",
        ),
        (
            "    server_metrics: {url: 'http://h/metrics', evry: 1s}\n",
            "s.yaml:8:47: providers.local.server_metrics.evry: unknown field 'evry' (did you "
            "mean 'every'?)",
        ),
    ],
)
def test_bad_input_is_named_where_it_is(block: str, expected: str) -> None:
    (found,) = problems(scenario(block))
    assert found.startswith(expected), found
