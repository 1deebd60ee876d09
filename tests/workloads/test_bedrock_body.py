"""``body:`` on Bedrock: deep-merged into the Converse and InvokeModel requests (before
signing), as it arrives at the simulator over a real socket; the output limit nested in a
provider's own request stays lens's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import lens
from lens.errors import ScenarioError
from lens.plan.model import SimSettings
from lens.scenario.load import parse_scenario
from tests.workloads.conftest import StartSim


@pytest.mark.parametrize("api", ["converse", "invoke"])
async def test_a_bedrock_body_reaches_the_server(
    start_sim: StartSim, tmp_path: Path, api: str
) -> None:
    server, base = await start_sim(
        SimSettings(ttft_s=0, itl_s=0, output_tokens=3, protocol="bedrock")
    )
    body = (
        "{inferenceConfig: {temperature: 0.2}, additionalModelRequestFields: {top_k: 5}}"
        if api == "converse"
        else "{temperature: 0.2, top_k: 5}"
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: br
            providers:
              br:
                type: bedrock
                model: anthropic.claude-3-haiku-20240307-v1:0
                base_url: {base.removesuffix("/v1")}
                region: us-east-1
                api_key: k
                api: {api}
                body: {body}
            prompts:
              - {{id: q, messages: [{{role: user, content: hi}}], body: {{extra: {{a: 1}}}}}}
            load:
              - {{id: s, pattern: burst, requests: 2, max_tokens: 7}}
            """
        )
    )
    results = await lens.run_async(path)
    assert results.exit_code == 0, [r.error_message for r in results.records]
    sent = [json.loads(b) for b in server.received]
    assert len(sent) == 2
    for got in sent:
        assert got["extra"] == {"a": 1}  # the prompt's, over the provider's
        if api == "converse":
            # Deep-merged beside the limit lens sets: both arrive.
            assert got["inferenceConfig"] == {"maxTokens": 7, "temperature": 0.2}
            assert got["additionalModelRequestFields"] == {"top_k": 5}
        else:
            assert (got["max_tokens"], got["temperature"], got["top_k"]) == (7, 0.2, 5)


def test_a_nested_output_limit_in_a_body_is_refused(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        version: 1
        name: br
        providers:
          br: {type: bedrock, model: m, region: us-east-1, api_key: k,
               body: {inferenceConfig: {maxTokens: 9}}}
        prompts:
          - {id: q, messages: [{role: user, content: hi}]}
        load:
          - {id: s, pattern: burst, requests: 1}
        """
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", base_dir=tmp_path)
    assert "'inferenceConfig.maxTokens' is set by lens" in str(info.value.problems[0])
