"""Every kind of bad input becomes a ScenarioError naming file:line:col, path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens.errors import ScenarioError
from lens.scenario import load_scenario
from tests.scenario.helpers import BASE, only_problem, parse, problems

# --- the file itself -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a directory, not a scenario file"):
        load_scenario(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    # A path through a regular file fails with "Not a directory": an OSError of another kind.
    (tmp_path / "f").write_text("x")
    with pytest.raises(ScenarioError, match=r"cannot read .*Not a directory"):
        load_scenario(tmp_path / "f" / "s.yaml")


def test_bad_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert str(problem) == f"{path}:2:10: not valid UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_scenario(path, env={}).name == "t"


def test_yaml_syntax_error() -> None:
    assert only_problem("version: 1\nname: [t\n").startswith(
        "s.yaml:3:1: invalid YAML: while parsing a flow sequence"
    )


def test_empty_file() -> None:
    assert only_problem("") == (
        "s.yaml:1:1: expected a mapping with version, name, providers, prompts and load, "
        "got an empty file"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert only_problem("- a\n- b\n") == (
        "s.yaml:1:1: expected a mapping with version, name, providers, prompts and load, got a list"
    )


# --- structure -----------------------------------------------------------------------------


def test_version_other_than_1() -> None:
    assert only_problem(BASE.replace("version: 1", "version: 2")) == (
        "s.yaml:1:10: version: unsupported scenario version 2; this lens reads version 1"
    )


def test_version_as_string_is_not_1() -> None:
    assert "unsupported scenario version '1'" in only_problem(
        BASE.replace("version: 1", "version: '1'")
    )


def test_duplicate_key() -> None:
    assert only_problem(BASE + "name: again\n") == (
        "s.yaml:14:1: name: duplicate key 'name' (first at line 2, column 1); "
        "each key may appear only once"
    )


def test_unknown_top_level_key_suggests() -> None:
    assert only_problem(BASE + "slas: []\n") == (
        "s.yaml:14:1: slas: unknown field 'slas' (did you mean 'sla'?)"
    )


def test_unknown_nested_key_suggests_from_the_right_model() -> None:
    text = BASE.replace("    type: simulated\n", "    type: simulated\n    ttf: 1s\n")
    assert only_problem(text) == (
        "s.yaml:6:5: providers.sim.ttf: unknown field 'ttf' (did you mean 'ttft'?)"
    )


def test_unknown_key_without_suggestion_lists_allowed_keys() -> None:
    text = BASE + "defaults: {zzz: 1}\n"
    assert only_problem(text) == (
        "s.yaml:14:12: defaults.zzz: unknown field 'zzz'; "
        "allowed here: retries, timeout, max_tokens, warmup, cooldown, drain, drain_timeout, "
        "sla_includes_warmup, repeat, pacing, workers"
    )


def test_missing_required_field_names_it_and_says_what_it_is() -> None:
    text = BASE.replace("    requests: 2\n", "")
    assert only_problem(text) == (
        "s.yaml:11:5: load[0].requests: missing required field 'requests' "
        "(Number of requests sent together, per wave)"
    )


def test_missing_top_level_sections() -> None:
    found = problems("version: 1\nname: t\n")
    # prompts: needed unless every stage replays a trace, which is known once load: is.
    assert [p.split(": ")[1] for p in found] == ["providers", "load"]
    assert all(p.startswith("s.yaml:1:1: ") for p in found)
    found = problems("version: 1\nname: t\nproviders: {s: {type: simulated}}\n"
                     "load: [{id: b, pattern: burst, requests: 1}]\n")  # fmt: skip
    assert found == [
        "s.yaml:1:1: prompts: a scenario needs prompts: at least one (only trace replays "
        "send their own)"
    ]


def test_unknown_provider_type_lists_allowed() -> None:
    text = BASE.replace("type: simulated", "type: openai-compat")
    assert only_problem(text) == (
        "s.yaml:5:11: providers.sim.type: unknown type 'openai-compat' (did you mean "
        "'openai-compatible'?); expected one of 'anthropic', 'azure-openai', 'bedrock', "
        "'gemini', 'openai', 'openai-compatible', 'openai-responses', 'simulated'"
    )


def test_missing_provider_type() -> None:
    text = BASE.replace("    type: simulated\n", "    ttft: 1s\n")
    assert only_problem(text) == (
        "s.yaml:5:5: providers.sim.type: missing field 'type': expected one of 'anthropic', "
        "'azure-openai', 'bedrock', 'gemini', 'openai', 'openai-compatible', "
        "'openai-responses', 'simulated'"
    )


def test_unknown_pattern_lists_allowed() -> None:
    text = BASE.replace("pattern: burst", "pattern: spike")
    assert only_problem(text) == (
        "s.yaml:12:14: load[0].pattern: unknown pattern 'spike'; expected one of 'burst', "
        "'concurrency', 'constant-rate', 'idle-probe', 'ramp', 'sweep', 'trace'"
    )


def test_provider_that_is_not_a_mapping() -> None:
    text = BASE.replace("  sim:\n    type: simulated\n", "  sim: 5\n")
    assert only_problem(text).startswith("s.yaml:4:8: providers.sim: ")


def test_bad_provider_id() -> None:
    text = BASE.replace("  sim:", "  my sim:")
    assert only_problem(text) == (
        "s.yaml:4:3: providers.my sim: expected an id made of letters, digits, '_', '-' and '.' "
        "(no spaces, no '#'), got 'my sim'"
    )


def test_bad_base_url() -> None:
    text = BASE.replace(
        "    type: simulated\n",
        "    type: openai-compatible\n    base_url: localhost:8000\n    model: m\n",
    )
    assert only_problem(text) == (
        "s.yaml:6:15: providers.sim.base_url: expected an http:// or https:// URL such as "
        "http://127.0.0.1:8000/v1, got 'localhost:8000'"
    )


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "requests: many",
            "s.yaml:13:15: load[0].requests: expected a whole number, got 'many'",
        ),
        ("requests: 0", "s.yaml:13:15: load[0].requests: must be greater than 0, got 0"),
        ("requests: 2.5", "s.yaml:13:15: load[0].requests: expected a whole number, got 2.5"),
        ("requests: true", "s.yaml:13:15: load[0].requests: expected a whole number, got true"),
        ("requests: '2'", "s.yaml:13:15: load[0].requests: expected a whole number, got '2'"),
    ],
)
def test_wrong_types(line: str, expected: str) -> None:
    assert only_problem(BASE.replace("requests: 2", line)) == expected


def test_string_expected() -> None:
    assert only_problem(BASE.replace("name: t", "name: 5")) == (
        "s.yaml:2:7: name: expected a string, got 5 (quote it to make it a string)"
    )
    assert (
        only_problem(BASE.replace("name: t", "name: ''")) == "s.yaml:2:7: name: must not be empty"
    )


def test_list_expected() -> None:
    text = BASE.replace("    requests: 2\n", "    requests: 2\n    providers: sim\n")
    assert only_problem(text) == "s.yaml:14:16: load[0].providers: expected a list, got 'sim'"


def test_mapping_expected() -> None:
    assert (
        only_problem(BASE + "defaults: 5\n") == "s.yaml:14:11: defaults: expected a mapping, got 5"
    )


def test_bool_expected() -> None:
    text = BASE.replace(
        "    type: simulated\n",
        "    type: openai-compatible\n    base_url: http://h/v1\n    model: m\n"
        "    include_usage: 'yes'\n",
    )
    assert only_problem(text) == (
        "s.yaml:8:20: providers.sim.include_usage: expected true or false, got 'yes'"
    )


def test_literal_suggestion() -> None:
    text = BASE.replace("role: user", "role: usr")
    assert only_problem(text) == (
        "s.yaml:9:16: prompts[0].messages[0].role: expected one of 'system', 'developer', "
        "'user' or 'assistant', got 'usr' (did you mean 'user'?)"
    )


def test_bad_duration() -> None:
    assert only_problem(BASE + "defaults: {timeout: fast}\n") == (
        "s.yaml:14:21: defaults.timeout: expected a duration like 150ms, 2s, 1m, 1h or 1h30m "
        "(a bare number means seconds), got 'fast'"
    )


def test_bad_rate() -> None:
    text = BASE.replace(
        "    pattern: burst\n    requests: 2\n",
        "    pattern: constant-rate\n    rate: 5/h\n    duration: 2s\n",
    )
    assert only_problem(text) == (
        "s.yaml:13:11: load[0].rate: expected a rate like 5/s or 300/m "
        "(a bare number means per second), got '5/h'"
    )


def test_bad_percent() -> None:
    text = BASE.replace("    type: simulated\n", "    type: simulated\n    errors: {rate_500: 3}\n")
    assert only_problem(text) == (
        "s.yaml:6:24: providers.sim.errors.rate_500: a fraction must be between 0 and 1, "
        "got 3 (did you mean '3%'?)"
    )


def test_error_rates_must_add_up_to_at_most_100_percent() -> None:
    text = BASE.replace(
        "    type: simulated\n",
        "    type: simulated\n    errors: {rate_429: 60%, rate_500: 50%}\n",
    )
    assert only_problem(text) == (
        "s.yaml:6:13: providers.sim.errors: the error rates add up to more than 100%"
    )


def test_constant_rate_needs_duration_or_requests() -> None:
    text = BASE.replace(
        "    pattern: burst\n    requests: 2\n", "    pattern: constant-rate\n    rate: 5\n"
    )
    assert only_problem(text) == (
        "s.yaml:11:5: load[0]: a constant-rate stage needs 'duration', 'requests' or both"
    )


def test_concurrency_needs_requests_or_duration() -> None:
    text = BASE.replace(
        "    pattern: burst\n    requests: 2\n", "    pattern: concurrency\n    concurrency: 2\n"
    )
    assert only_problem(text) == (
        "s.yaml:11:5: load[0]: a concurrency stage needs 'requests', 'duration' or both"
    )


@pytest.mark.parametrize(
    "stage",
    [
        "    pattern: burst\n    requests: 2000000000\n",
        "    pattern: constant-rate\n    rate: 1000/s\n    duration: 2000000s\n",
        "    pattern: concurrency\n    concurrency: 1\n    requests: 2000000000\n",
    ],
)
def test_absurd_stage_sizes_are_refused(stage: str) -> None:
    text = BASE.replace("    pattern: burst\n    requests: 2\n", stage)
    assert "schedules more than 1000000000 requests, the most lens plans" in only_problem(text)


# --- prompts -------------------------------------------------------------------------------


def test_prompt_with_two_kinds() -> None:
    text = BASE.replace("  - id: q\n", "  - id: q\n    file: x.jsonl\n")
    found = problems(text)
    assert found[0] == (
        "s.yaml:7:5: prompts[0]: has both 'messages' and 'file': a prompt takes exactly one "
        "of 'messages', 'synthetic', 'file' or 'dataset'"
    )


def test_prompt_with_no_kind() -> None:
    text = BASE.replace("    messages:\n      - {role: user, content: hi}\n", "    weight: 2\n")
    assert only_problem(text) == (
        "s.yaml:7:5: prompts[0]: needs one of 'messages' (inline chat), 'synthetic' "
        "(generated text), 'file' (JSONL) or 'dataset' (sampled from a dataset)"
    )


def test_prompt_that_is_not_a_mapping() -> None:
    text = BASE.replace("  - id: q\n    messages:\n      - {role: user, content: hi}\n", "  - q\n")
    assert only_problem(text) == (
        "s.yaml:7:5: prompts[0]: expected a mapping like {id: q1, messages: [...]}, got 'q'"
    )


def test_empty_messages_and_bad_weight() -> None:
    text = BASE.replace(
        "    messages:\n      - {role: user, content: hi}\n", "    weight: 0\n    messages: []\n"
    )
    assert problems(text) == [
        "s.yaml:8:13: prompts[0].weight: must be greater than 0, got 0",
        "s.yaml:9:15: prompts[0].messages: needs at least 1 item(s)",
    ]


def test_duplicate_ids() -> None:
    text = BASE + "  - id: warm\n    pattern: burst\n    requests: 1\n"
    text = text.replace(
        "prompts:\n", "prompts:\n  - id: q\n    synthetic: {input_tokens: 5, output_tokens: 5}\n"
    )
    assert problems(text) == [
        "s.yaml:9:9: prompts[1].id: duplicate prompt id 'q' (first at prompts[0].id); "
        "each prompt id may appear only once",
        "s.yaml:16:9: load[1].id: duplicate stage id 'warm' (first at load[0].id); "
        "each stage id may appear only once",
    ]


def test_duplicate_entries_in_stage_lists() -> None:
    text = BASE.replace("    requests: 2\n", "    requests: 2\n    providers: [sim, sim]\n")
    assert only_problem(text) == (
        "s.yaml:14:22: load[0].providers[1]: duplicate entry in load[0].providers 'sim' "
        "(first at load[0].providers[0]); each entry in load[0].providers may appear only once"
    )


# --- SLA -----------------------------------------------------------------------------------


def test_sla_syntax_error_is_positioned() -> None:
    text = BASE + "sla:\n  - ttft.p95 < 800ms\n  - ttft.p96 < 1s\n"
    assert only_problem(text) == (
        "s.yaml:16:5: sla[1]: unknown statistic 'p96' (did you mean 'p99'?); expected one of "
        "n, min, mean, p50, p90, p95, p99, max"
    )


def test_sla_long_form_error_points_at_assert() -> None:
    text = BASE + 'sla:\n  - {assert: "e2e.p99 <", stage: warm}\n'
    assert only_problem(text).startswith(
        "s.yaml:15:14: sla[0].assert: cannot parse SLA 'e2e.p99 <'"
    )


def test_sla_entry_of_the_wrong_type() -> None:
    assert only_problem(BASE + "sla:\n  - 5\n") == (
        "s.yaml:15:5: sla[0]: expected an assertion like 'ttft.p95 < 800ms' or a mapping with "
        "'assert' (and optionally 'provider', 'stage'), got 5"
    )


# --- environment ---------------------------------------------------------------------------


def test_unset_variable_is_reported_once_at_its_position() -> None:
    text = BASE.replace("type: simulated", "type: simulated\n    model: ${M}")
    assert only_problem(text) == (
        "s.yaml:6:12: providers.sim.model: environment variable M is not set "
        "(set it, or give a default: '${M:-default}')"
    )


def test_interpolated_values_are_typed_and_validated() -> None:
    text = BASE + "budget: ${B:--1}\n"
    assert only_problem(text) == (
        "s.yaml:14:9: budget: expected an amount of US dollars like $10 or 0.15, got -1"
    )


def test_variables_outside_configuration_stay_literal_and_say_so() -> None:
    text = BASE.replace("requests: 2", "requests: ${N}")
    assert only_problem(text, {"N": "2"}) == (
        "s.yaml:13:15: load[0].requests: expected a whole number, got '${N}' (${...} is "
        "literal text here: lens expands environment variables only in configuration fields "
        "such as api_key, base_url, headers, model, region, export and budget)"
    )


# --- all at once ---------------------------------------------------------------------------


def test_all_problems_are_reported_in_file_order() -> None:
    text = """\
    version: 3
    name: t
    providers:
      sim: {type: simulated, ttft: slow}
    prompts:
      - id: q
        messages: [{role: user, content: hi}]
    load:
      - id: warm
        pattern: burst
        requests: -1
    sla:
      - nonsense
    """
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [
        "s.yaml:1:10",
        "s.yaml:4:32",
        "s.yaml:11:15",
        "s.yaml:13:5",
    ]


def test_scenario_error_message_lists_every_problem() -> None:
    text = BASE.replace("version: 1", "version: 2").replace("requests: 2", "requests: x")
    with pytest.raises(ScenarioError) as info:
        parse(text)
    assert str(info.value).count("\n") == 1


def test_nul_in_the_path() -> None:
    with pytest.raises(ScenarioError, match="cannot read a\x00b: embedded null byte"):
        load_scenario("a\x00b")


# --- load patterns: arrival processes, waves, ramps, sweeps --------------------------------


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (
            "    pattern: constant-rate\n    rate: 5/s\n    duration: 2s\n    arrival: bursty\n",
            "s.yaml:15:14: load[0].arrival: expected one of 'uniform', 'poisson' or 'gamma', "
            "got 'bursty'",
        ),
        (
            "    pattern: constant-rate\n    rate: 5/s\n    duration: 2s\n    arrival: gamma\n"
            "    burstiness: -0.5\n",
            "s.yaml:16:17: load[0].burstiness: must be greater than 0, got -0.5",
        ),
        (
            "    pattern: constant-rate\n    rate: 5/s\n    duration: 2s\n    arrival: poisson\n"
            "    burstiness: 2\n",
            "s.yaml:16:5: load[0].burstiness: 'burstiness' shapes gamma arrivals: add "
            "'arrival: gamma' or remove it",
        ),
        (
            "    pattern: ramp\n    from: -1\n    to: 5/s\n    duration: 10s\n",
            "s.yaml:13:11: load[0].from: expected a rate like 5/s or 300/m (a bare number means "
            "per second) and zero or more, got -1",
        ),
        (
            "    pattern: ramp\n    from: 0/s\n    to: 0\n    duration: 10s\n",
            "s.yaml:11:5: load[0]: a ramp from 0/s to 0/s sends nothing: raise 'from' or 'to'",
        ),
        (
            "    pattern: ramp\n    from: 1/s\n    to: 5/s\n    duration: 10s\n    steps: 1\n",
            "s.yaml:16:12: load[0].steps: must be at least 2, got 1",
        ),
        (
            "    pattern: ramp\n    from: 1/s\n    to: 5/s\n    duration: 10s\n"
            "    arrival: gamma\n",
            "s.yaml:16:14: load[0].arrival: expected one of 'uniform' or 'poisson', got 'gamma'",
        ),
        (
            "    pattern: sweep\n    rates: [1/s, 2/s]\n    concurrencies: [1, 2]\n"
            "    duration: 5s\n",
            "s.yaml:14:5: load[0].concurrencies: give one of 'rates' (open loop), "
            "'concurrencies' (closed loop) or 'auto', not 'rates' and 'concurrencies'",
        ),
        (
            "    pattern: sweep\n    duration: 5s\n",
            "s.yaml:11:5: load[0]: a sweep stage needs 'rates' (open loop), 'concurrencies' or "
            "'auto'",
        ),
        (
            "    pattern: sweep\n    rates: [1/s]\n",
            "s.yaml:11:5: load[0]: a sweep stage needs 'duration', 'requests' or both, for each "
            "step",
        ),
        (
            "    pattern: sweep\n    concurrencies: [1, 2]\n    requests: 4\n"
            "    arrival: poisson\n",
            "s.yaml:15:5: load[0].arrival: 'arrival' applies to a sweep over 'rates'; a sweep "
            "over 'concurrencies' is closed loop",
        ),
        (
            "    pattern: sweep\n    rates: [1/s, 2/s, 60/m]\n    requests: 4\n",
            "s.yaml:13:5: load[0].rates: 1/s appears twice in 'rates': each step needs its own",
        ),
        (
            "    pattern: burst\n    requests: 2\n    interval: 1s\n",
            "s.yaml:14:5: load[0].interval: 'interval' separates waves: set 'waves' to 2 or "
            "more, or remove 'interval'",
        ),
        (
            "    pattern: burst\n    requests: 2\n    waves: 3\n",
            "s.yaml:14:5: load[0].waves: 3 waves need an 'interval' between them, e.g. "
            "interval: 10s",
        ),
    ],
    ids=[
        "unknown-arrival",
        "negative-burstiness",
        "burstiness-without-gamma",
        "negative-from",
        "ramp-of-nothing",
        "one-step",
        "gamma-ramp",
        "rates-and-concurrencies",
        "no-steps",
        "no-step-length",
        "arrival-on-closed-loop",
        "repeated-rate",
        "interval-without-waves",
        "waves-without-interval",
    ],
)
def test_bad_load_pattern(stage: str, expected: str) -> None:
    assert only_problem(BASE.replace("    pattern: burst\n    requests: 2\n", stage)) == expected


def test_ramp_without_from_and_to() -> None:
    text = BASE.replace(
        "    pattern: burst\n    requests: 2\n", "    pattern: ramp\n    duration: 9s\n"
    )
    assert problems(text) == [
        "s.yaml:11:5: load[0].from: missing required field 'from' (Arrival rate at the start, "
        "e.g. 1/s; 0 is allowed)",
        "s.yaml:11:5: load[0].to: missing required field 'to' (Arrival rate at the end, e.g. "
        "20/s; below 'from' for a falling ramp)",
    ]


@pytest.mark.parametrize(
    "stage",
    [
        "    pattern: burst\n    requests: 1000\n    waves: 2000000\n    interval: 1s\n",
        "    pattern: ramp\n    from: 0\n    to: 2000/s\n    duration: 2000000s\n",
        "    pattern: sweep\n    rates: [1/s, 1000/s]\n    duration: 2000000s\n",
        "    pattern: sweep\n    concurrencies: [1]\n    requests: 2000000000\n",
    ],
)
def test_absurd_pattern_sizes_are_refused(stage: str) -> None:
    text = BASE.replace("    pattern: burst\n    requests: 2\n", stage)
    assert "schedules more than 1000000000 requests, the most lens plans" in only_problem(text)
