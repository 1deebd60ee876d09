"""Plugins found by entry point, in this process: the example plugin's provider through
scenario, plan, adapter and a real run; exporter kinds; and broken plugins, named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lens
from lens.cli import main
from lens.entry_points import PluginError
from lens.errors import ExportError, ProviderError
from lens.export.registry import export_all
from lens.plan.model import Message, PluginSettings, PromptSpec
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, TokenSource
from lens.scenario.schema import scenario_json_schema, schema_text
from lens.targets import TargetError, parse_target
from tests.plugins.conftest import EXAMPLE_EXPORTER, EXAMPLE_PROVIDER, Install
from tests.plugins.ndjson_server import FIRST_TOKEN_DELAY_S, INPUT_TOKENS, TOKENS, ndjson_server
from tests.timing import EARLY_S, LOADED_LATE_S

FAKES = "tests.plugins.fake_plugins"
REPO = Path(__file__).resolve().parents[2]


def scenario_text(provider: str = "", base_url: str = "http://127.0.0.1:9/v1") -> str:
    return f"""\
version: 1
name: plugin-demo
defaults: {{max_tokens: 16}}
providers:
  local:
    type: ndjson-tokens
    base_url: {base_url}
    model: tiny
    temperature: 0.2
{provider}prompts:
  - id: hi
    messages: [{{role: user, content: Say hello}}]
load:
  - {{id: steady, pattern: burst, requests: 3}}
"""


PROMPT = PromptSpec("hi", (Message("user", "Say hello"),))


def test_a_plugin_provider_compiles_to_a_spec_holding_its_settings(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER])

    plan = lens.compile_plan(lens.load_scenario(scenario_text()), env={})
    spec = plan.providers["local"]
    adapter = adapter_for(spec)
    request = adapter.build_request(PROMPT, 16)

    assert (spec.type, spec.model, spec.base_url) == (
        "ndjson-tokens",
        "tiny",
        "http://127.0.0.1:9/v1",
    )
    assert isinstance(spec.settings, PluginSettings)
    assert spec.plugin_settings is spec.settings.values  # the plugin contract's name for it
    assert spec.settings.values.model_dump()["temperature"] == 0.2
    assert str(request.url) == "http://127.0.0.1:9/v1/generate"
    assert json.loads(request.content)["temperature"] == 0.2
    assert "authorization" not in request.headers  # no key: none is sent
    shown = lens.describe_plan(plan, env={})["providers"][0]
    assert shown["settings"] == {"path": "/generate", "temperature": 0.2}


def test_a_plugin_reads_its_key_variable_and_lens_masks_it(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER])
    env = {"NDJSON_TOKENS_API_KEY": "sk-plugin-secret"}

    plan = lens.compile_plan(lens.load_scenario(scenario_text(), env=env), env=env)
    request = adapter_for(plan.providers["local"]).build_request(PROMPT, None)

    assert request.headers["authorization"] == "Bearer sk-plugin-secret"
    assert "sk-plugin-secret" not in json.dumps(lens.describe_plan(plan, env=env))
    assert "sk-plugin-secret" not in repr(request.headers)


def test_a_plugins_fields_are_validated_with_positions(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER])

    with pytest.raises(lens.ScenarioError) as caught:
        lens.load_scenario(scenario_text(provider="    colour: blue\n").replace("0.2", "9"))

    assert [str(p) for p in caught.value.problems] == [
        "<scenario>:9:18: providers.local.temperature: must be at most 2, got 9",
        "<scenario>:10:5: providers.local.colour: unknown field 'colour'; allowed here: "
        "keep_alive, proxy, tls, price, server_metrics, type, model, base_url, api_key, "
        "headers, path, temperature",
    ]


def test_a_mistyped_plugin_type_gets_a_suggestion(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER])

    with pytest.raises(lens.ScenarioError, match=r"did you mean 'ndjson-tokens'\?"):
        lens.load_scenario(scenario_text().replace("type: ndjson-tokens", "type: ndjson-token"))


def test_the_schema_has_the_plugins_fields_only_while_it_is_installed(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER], exporters=[EXAMPLE_EXPORTER])
    with_plugin = json.loads(schema_text(scenario_json_schema()))
    install()
    without = json.loads(schema_text(scenario_json_schema()))

    assert "NdjsonTokensSettings" in with_plugin["$defs"]
    assert "summary-line" in with_plugin["properties"]["export"]["items"]["pattern"]
    assert "NdjsonTokensSettings" not in without["$defs"]
    assert "summary-line" not in without["properties"]["export"]["items"]["pattern"]
    checked_in = (REPO / "schemas" / "scenario-v1.json").read_text(encoding="utf-8")
    assert schema_text(scenario_json_schema()) == checked_in


def test_a_run_through_the_plugin_measures_and_exports(install: Install, tmp_path: Path) -> None:
    install(providers=[EXAMPLE_PROVIDER], exporters=[EXAMPLE_EXPORTER])
    out = tmp_path / "summary.txt"

    with ndjson_server() as server:
        port = server.server_address[1]
        text = scenario_text(base_url=f"http://127.0.0.1:{port}/v1")
        text += f"export: ['summary-line={out}']\n"
        results = lens.run(text, env={})

    summary = results.summaries[0]
    assert (summary.requests, summary.ok, summary.output_tokens) == (3, 3, 3 * len(TOKENS))
    assert {r.token_source for r in results.records} == {TokenSource.USAGE}
    assert {r.input_tokens for r in results.records} == {INPUT_TOKENS}
    ttft = summary.metrics["ttft"]
    assert ttft.min is not None
    assert ttft.p50 is not None
    assert ttft.min >= (FIRST_TOKEN_DELAY_S - EARLY_S) * 1e3  # never early
    assert ttft.p50 <= (FIRST_TOKEN_DELAY_S + 4 * LOADED_LATE_S) * 1e3
    assert out.read_text(encoding="utf-8").startswith("plugin-demo steady local requests=3 ok=3")


def test_the_decoder_splits_lines_across_reads_and_knows_a_cut_stream(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER])
    plan = lens.compile_plan(lens.load_scenario(scenario_text()), env={})
    adapter = adapter_for(plan.providers["local"])

    whole = adapter.new_decoder(PROMPT)
    for t, data in enumerate([b'{"t": "He', b'llo"}\n{"t"', b': "!"}\n', b'{"done": true}']):
        whole.feed(data, 100 + t)
    done = whole.finish(200, eof=True)
    cut = adapter.new_decoder(PROMPT)
    cut.feed(b'{"t": "Hello"}\n', 100)
    lost = cut.finish(150, eof=False)
    broken = adapter.new_decoder(PROMPT)
    broken.feed(b'{"error": "model overloaded"}\nnot json\n', 100)
    failed = broken.finish(150, eof=True)

    assert (done.chunk_times, done.error_class, done.token_source) == (
        (101, 102),
        None,
        TokenSource.ESTIMATED,
    )
    assert (lost.error_class, lost.t_first_token) == (ErrorClass.CUT_STREAM, 100)
    assert (failed.error_class, failed.error_message) == (
        ErrorClass.STREAM_ERROR,
        "model overloaded",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no_such_module_xyz:PLUGIN", "cannot be loaded: ModuleNotFoundError: No module named"),
        (f"{FAKES}:NO_FACTORY", "has no settings_model"),
        (f"{FAKES}:NOT_SETTINGS", "settings_model must subclass lens.plugins.ProviderSettings"),
        (f"{FAKES}:WRONG_NAME", "must declare type: Literal['broken'], the entry point's name"),
    ],
)
def test_a_broken_provider_plugin_is_named_not_a_traceback(
    install: Install, value: str, expected: str
) -> None:
    install(providers=[("broken", value)])

    with pytest.raises(PluginError) as caught:
        lens.load_scenario(scenario_text())

    assert str(caught.value).startswith(f"plugin 'broken' of lens.providers, {value}")
    assert expected in str(caught.value)


def test_a_plugin_cannot_take_a_built_in_type(install: Install) -> None:
    install(providers=[("openai", f"{FAKES}:BUILTIN")])

    with pytest.raises(PluginError, match="provider type 'openai' is built into lens"):
        lens.load_scenario(scenario_text())


def test_the_cli_reports_a_broken_plugin_in_one_line(
    install: Install, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(providers=[("broken", "no_such_module_xyz:PLUGIN")])
    (tmp_path / "s.yaml").write_text(scenario_text(), encoding="utf-8")

    code = main(["validate", str(tmp_path / "s.yaml")])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: plugin 'broken' of lens.providers")
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_an_adapter_factory_that_crashes_is_a_provider_error(install: Install) -> None:
    install(providers=[EXAMPLE_PROVIDER, ("crashing", f"{FAKES}:CRASHING")])
    text = (
        scenario_text().replace("ndjson-tokens", "crashing").replace("    temperature: 0.2\n", "")
    )
    plan = lens.compile_plan(lens.load_scenario(text), env={})

    with pytest.raises(
        ProviderError,
        match=r"provider plugin 'crashing' cannot make an adapter for 'local': "
        r"RuntimeError: cannot talk to http://127.0.0.1:9/v1",
    ):
        adapter_for(plan.providers["local"])


def test_exporter_kinds_join_the_targets_without_importing_the_plugin(install: Install) -> None:
    install(exporters=[("summary-line", "no_such_module_xyz:export"), ("csv", "x:y")])

    target = parse_target("summary-line=out/s.txt")
    with pytest.raises(TargetError) as caught:
        parse_target("summary-lines=out/s.txt")

    assert target.kind == "summary-line"
    assert str(caught.value) == (
        "unknown export kind 'summary-lines' (did you mean 'summary-line'?); known kinds: "
        "csv, prometheus, influx, junit, markdown, html, summary-line"
    )


def test_a_broken_or_failing_exporter_plugin_is_one_failed_export(
    install: Install, tmp_path: Path
) -> None:
    install(exporters=[("gone", "no_such_module_xyz:export"), ("bad", f"{FAKES}:failing_exporter")])
    results = lens.load_results(_results_file(tmp_path))
    targets = [
        parse_target("gone=a.txt"),
        parse_target("bad=b.txt"),
        parse_target(f"csv={tmp_path / 'r.csv'}"),
    ]

    failures = export_all(results, targets)

    assert [str(f) for f in failures] == [
        "export gone to a.txt: plugin 'gone' of lens.exporters, no_such_module_xyz:export "
        "cannot be loaded: ModuleNotFoundError: No module named 'no_such_module_xyz'",
        "export bad to b.txt: exporter plugin 'bad' failed: KeyError: 'oops'",
    ]
    assert (tmp_path / "r.csv").exists()  # the others still ran
    with pytest.raises(ExportError):
        lens.export(results, "bad=b.txt")


def _results_file(tmp_path: Path) -> Path:
    """A small real results file: the simulated provider, five requests."""
    text = """\
version: 1
name: tiny
providers: {sim: {type: simulated, ttft: 1ms, itl: 1ms, output_tokens: 2}}
prompts: [{id: p, messages: [{role: user, content: hi}]}]
load: [{id: s, pattern: burst, requests: 5}]
"""
    path = tmp_path / "results.json"
    path.write_text(lens.run(text, env={}).to_json(), encoding="utf-8")
    return path
