"""Scenario file -> validated, frozen ``Scenario``, or one ``ScenarioError`` listing every
problem with ``file:line:col``, field path and what was expected.

Steps, each collecting problems rather than stopping at the first:
1. read and decode the file;
2. compose the YAML with positions, rejecting duplicate keys, alias bombs and deep nesting,
   and expanding ``${VAR}`` in configuration fields only (yaml_nodes.py, env_scope.py);
3. validate with pydantic (the messages users read, see messages.py) *and* with the
   published JSON Schema (schema.py).  A schema error is only shown when pydantic said
   nothing about that spot: normally they agree, and a shown schema error means the two have
   drifted, which a test guards against;
4. read JSONL prompt files (prompts.py), which must lie inside the scenario's folder unless
   ``allow_files_outside``, and check that ids are unique (checks.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lens.errors import Problem, ScenarioError, SourcePos
from lens.scenario.checks import duplicate_problems
from lens.scenario.datasets import DatasetRead, read_dataset
from lens.scenario.env_scope import PROMPTS_SWITCH, EnvScope
from lens.scenario.messages import Explained, explain
from lens.scenario.model import (
    DatasetPrompt,
    DatasetSpec,
    FilePrompt,
    FileRequest,
    OpenAICompatibleProvider,
    Scenario,
    TokenizerRef,
    TraceStage,
    scenario_model,
)
from lens.scenario.model.base import MAX_REQUESTS_PER_STAGE
from lens.scenario.prompts import read_prompt_file
from lens.scenario.schema import schema_errors
from lens.scenario.server_tokenizer import (
    Flavour,
    ServerEstimate,
    ServerTarget,
    current_session,
    origin_of,
)
from lens.scenario.tokenizers import ESTIMATE, Tokenizer, TokenizerError, load_tokenizer
from lens.scenario.traces import TraceTable, read_trace
from lens.scenario.units import show
from lens.scenario.yaml_nodes import PathT, SourceMap, format_path, parse_yaml


def load_scenario(
    path: str | Path, *, env: Mapping[str, str] | None = None, allow_files_outside: bool = False
) -> Scenario:
    """Load and validate a scenario file; ``env`` defaults to ``os.environ``.

    ``allow_files_outside`` lets ``file:`` prompts name files outside the scenario's folder
    (``lens ... --allow-files-outside``); by default that is an error, so a scenario from an
    untrusted source cannot send, say, ``~/.ssh/id_rsa`` as prompt text."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ScenarioError(f"{file} is a directory, not a scenario file") from None
    except FileNotFoundError:
        raise ScenarioError(f"{file}: no such scenario file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", "") or str(exc)
        raise ScenarioError(f"cannot read {file}: {reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        message = f"not valid UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        raise ScenarioError(Problem(message, pos=SourcePos(file, line, col))) from None
    return parse_scenario(
        text,
        file=file,
        base_dir=Path(path).parent,
        env=env,
        allow_files_outside=allow_files_outside,
    )


def parse_scenario(
    text: str,
    *,
    file: str = "<scenario>",
    base_dir: str | Path = ".",
    env: Mapping[str, str] | None = None,
    allow_files_outside: bool = False,
) -> Scenario:
    """Validate scenario text; ``file`` names it in messages, ``base_dir`` anchors prompt
    files (and confines them unless ``allow_files_outside``)."""
    environ = os.environ if env is None else env
    model = scenario_model()  # Scenario, with the installed provider plugins' types
    scope = EnvScope(model)
    doc = parse_yaml(text, file, environ, scope)
    if doc.data is None or not isinstance(doc.data, dict):
        problems = list(doc.problems)
        if not problems:
            got = "an empty file" if doc.data is None else show(doc.data)
            expected = "expected a mapping with version, name, providers, prompts and load"
            pos = doc.source.value_pos(()) or SourcePos(file, 1, 1)
            problems.append(Problem(f"{expected}, got {got}", pos=pos))
        raise ScenarioError(problems)

    report = _Report(doc.data, doc.source, list(doc.problems), set(doc.problem_paths), scope)
    scenario: Scenario | None = None
    try:
        scenario = model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            explained = explain(error, model)
            if explained is not None:
                report.add(explained, schema=False)
    for explained in schema_errors(doc.data):
        report.add(explained, schema=True)
    prompt_env = environ if scope.prompts_allowed(doc.data) else None
    files = _PromptFiles(Path(base_dir), allow_files_outside, prompt_env)
    requests = files.read(doc.data, doc.source, report)
    tokenizers = (
        _tokenizers(scenario, Path(base_dir), doc.source, report) if scenario is not None else {}
    )
    datasets = files.read_datasets(scenario, doc.source, report, tokenizers.get("", ESTIMATE))
    traces = files.read_traces(scenario, doc.source, report)

    if scenario is not None:
        variables = {**doc.source.variables, **files.variables}
        scenario._source = dataclasses.replace(doc.source, variables=variables)
        scenario._tokenizers = tokenizers
        for i, prompt in enumerate(scenario.prompts):
            if isinstance(prompt, FilePrompt):
                prompt._requests = requests.get(i, ())
            elif isinstance(prompt, DatasetPrompt) and i in datasets:
                read = datasets[i]
                prompt._requests = read.requests
                prompt._records = read.records
                prompt._skipped = read.skipped
                prompt._passed = read.passed
        for i, stage in enumerate(scenario.load):
            if isinstance(stage, TraceStage) and i in traces:
                stage._table = traces[i]
        report.problems += duplicate_problems(scenario)
    if report.problems:
        raise ScenarioError(sorted(report.problems, key=lambda p: _position_order(p, file)))
    assert scenario is not None
    return scenario


class _Report:
    """Problems so far, and the paths they cover, so one spot is not reported twice."""

    def __init__(
        self,
        data: Any,
        source: SourceMap,
        problems: list[Problem],
        paths: set[PathT],
        scope: EnvScope,
    ):
        self.data = data
        self.source = source
        self.problems = problems
        self.paths = paths
        self.node_paths = frozenset(paths)  # duplicate keys, bad ${VAR}: found while parsing
        self.scope = scope

    def add(self, explained: Explained, *, schema: bool) -> None:
        """Record a validation problem unless an earlier one already covers its spot.

        A pydantic error is dropped only at or under a parse problem (an unset ${VAR} also
        fails its field).  A schema error is dropped near any reported spot: its union and
        "required" errors sit on the parent of the field pydantic names.
        """
        if schema:
            covered = any(_is_related(explained.path, seen) for seen in self.paths)
        else:
            covered = any(_is_under(explained.path, seen) for seen in self.node_paths)
        if covered:
            return
        path = _existing_path(self.data, explained.path)
        pos = self.source.key_pos(path) if explained.at_key else self.source.value_pos(path)
        message = explained.message + self._literal_env_hint(path)
        self.problems.append(Problem(message, pos=pos, path=format_path(path)))
        self.paths.add(explained.path)

    def _literal_env_hint(self, path: PathT) -> str:
        """Why a ``${VAR}`` written in a field that does not read the environment is still
        there: it used to be expanded everywhere."""
        value = _value_at(self.data, path)
        if not isinstance(value, str) or "${" not in value or self.scope(self.data, path):
            return ""
        if path[:1] == ("prompts",):
            return f" (${{...}} in prompts is literal text unless {PROMPTS_SWITCH}: true)"
        return (
            " (${...} is literal text here: lens expands environment variables only in "
            "configuration fields such as api_key, base_url, headers, model, region, export "
            "and budget)"
        )


def _is_under(path: PathT, reported: PathT) -> bool:
    return path[: len(reported)] == reported


def _is_related(path: PathT, reported: PathT) -> bool:
    return _is_under(path, reported) or _is_under(reported, path)


def _value_at(data: Any, path: PathT) -> Any:
    for seg in path:
        in_dict = isinstance(data, dict) and isinstance(seg, str) and seg in data
        in_list = isinstance(data, list) and isinstance(seg, int) and 0 <= seg < len(data)
        if not (in_dict or in_list):
            return None
        data = data[seg]
    return data


def _existing_path(data: Any, path: PathT) -> PathT:
    """The part of ``path`` present in ``data``, plus a missing key of a mapping (so
    "missing field" messages name it): ``sla[0].assert`` on a string entry is ``sla[0]``."""
    node = data
    for depth, seg in enumerate(path):
        if isinstance(node, dict) and isinstance(seg, str):
            if seg not in node:
                return path[: depth + 1]
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        else:
            return path[:depth]
    return path


class _PromptFiles:
    """Reads every ``file:`` prompt that looks usable, even when other parts are invalid, so
    its problems are reported in the same run."""

    def __init__(self, base_dir: Path, allow_outside: bool, env: Mapping[str, str] | None) -> None:
        self.base_dir = base_dir
        self.allow_outside = allow_outside
        self.env = env  # set when allow_env_in_prompts: true
        self.variables: dict[PathT, tuple[str, ...]] = {}

    def read(
        self, data: dict[str, Any], source: SourceMap, report: _Report
    ) -> dict[int, tuple[FileRequest, ...]]:
        found: dict[int, tuple[FileRequest, ...]] = {}
        prompts = data.get("prompts")
        if not isinstance(prompts, list):
            return found
        for i, item in enumerate(prompts):
            if not (isinstance(item, dict) and isinstance(item.get("file"), str) and item["file"]):
                continue
            written = item["file"]
            where = source.value_pos(("prompts", i, "file"))
            display = os.path.normpath(os.path.join(os.path.dirname(source.file), written))
            outside = None if self.allow_outside else self._outside(written, display)
            if outside is not None:
                report.problems.append(
                    Problem(outside, pos=where, path=format_path(("prompts", i, "file")))
                )
                continue
            prompt_id = str(item["id"]) if isinstance(item.get("id"), str) else f"prompts[{i}]"
            used: list[str] = []
            requests, problems = read_prompt_file(
                self.base_dir / written,
                display,
                prompt_id=prompt_id,
                where=where,
                env=self.env,
                used=used,
            )
            if used:
                path: PathT = ("prompts", i, "file")
                self.variables[path] = (*source.env_variables(path), *dict.fromkeys(used))
            found[i] = requests
            report.problems += problems
        return found

    def read_datasets(
        self, scenario: Scenario | None, source: SourceMap, report: _Report, tokenizer: Tokenizer
    ) -> dict[int, DatasetRead]:
        """Each ``dataset:`` prompt read, filtered and sampled (a valid scenario only: the
        sample and filter settings must be known)."""
        found: dict[int, DatasetRead] = {}
        if scenario is None:
            return found
        for i, prompt in enumerate(scenario.prompts):
            if not isinstance(prompt, DatasetPrompt):
                continue
            spec: DatasetSpec = prompt.dataset
            here: PathT = ("prompts", i, "dataset")
            where = source.value_pos((*here, "path"))
            display = os.path.normpath(os.path.join(os.path.dirname(source.file), spec.path))
            outside = None if self.allow_outside else self._outside(spec.path, display)
            if outside is not None:
                outside = outside.replace("prompts file", "dataset", 1)
                report.problems.append(
                    Problem(outside, pos=where, path=format_path((*here, "path")))
                )
                continue
            read, problems = read_dataset(
                self.base_dir / spec.path,
                display,
                spec,
                prompt_id=prompt.id,
                where=where,
                tokenizer=tokenizer,
                field=format_path(("prompts", i)),
            )
            report.problems += problems
            found[i] = read
        return found

    def read_traces(
        self, scenario: Scenario | None, source: SourceMap, report: _Report
    ) -> dict[int, TraceTable]:
        """Each ``pattern: trace`` stage's rows in its window (a valid scenario only: the
        format and window must be known)."""
        found: dict[int, TraceTable] = {}
        if scenario is None:
            return found
        for i, stage in enumerate(scenario.load):
            if not isinstance(stage, TraceStage):
                continue
            here: PathT = ("load", i, "file")
            where = source.value_pos(here)
            display = os.path.normpath(os.path.join(os.path.dirname(source.file), stage.file))
            outside = None if self.allow_outside else self._outside(stage.file, display)
            if outside is not None:
                outside = outside.replace("prompts file", "trace", 1)
                report.problems.append(Problem(outside, pos=where, path=format_path(here)))
                continue
            window = stage.window
            table, problems = read_trace(
                self.base_dir / stage.file,
                display,
                stage.format,
                start_s=window.start if window is not None else 0.0,
                duration_s=window.duration if window is not None else None,
                where=where,
                field_path=format_path(here),
            )
            report.problems += problems
            if table is not None and not len(table):
                report.problems.append(
                    Problem(
                        f"the window keeps none of the {table.rows_read} requests of trace "
                        f"{display} (it spans {table.span_s:g}s of trace time)",
                        pos=source.value_pos(("load", i, "window")) or where,
                        path=format_path(("load", i, "window")),
                    )
                )
            elif table is not None and len(table) > MAX_REQUESTS_PER_STAGE:
                report.problems.append(
                    Problem(
                        f"the trace has {len(table)} requests in its window, more than the "
                        f"{MAX_REQUESTS_PER_STAGE} lens plans for one stage: set a window",
                        pos=where,
                        path=format_path(here),
                    )
                )
            elif table is not None:
                found[i] = table
        return found

    def _outside(self, written: str, display: str) -> str | None:
        """Why ``written`` may not be read, or None: it must resolve (symlinks followed)
        inside the scenario's folder."""
        try:
            folder = self.base_dir.resolve()
            target = (self.base_dir / written).resolve()
        except (OSError, ValueError, RuntimeError):  # a NUL in the path, a symlink loop
            return None  # reading it reports the problem
        if target.is_relative_to(folder):
            return None
        if Path(os.path.normpath(folder / written)).is_relative_to(folder):
            how = "leads outside the scenario's folder through a symbolic link"
        elif Path(written).is_absolute():
            how = "is an absolute path outside the scenario's folder"
        else:
            how = "climbs out of the scenario's folder"
        return (
            f"prompts file {display} {how}: a scenario may only read files in its own folder "
            "(pass --allow-files-outside to lens validate/plan/run to read it anyway)"
        )


def _tokenizers(
    scenario: Scenario, base_dir: Path, source: SourceMap, report: _Report
) -> dict[str, Tokenizer]:
    """The tokenizers the scenario names, loaded once each ("" the scenario's own, else by
    provider id); a tokenizer that cannot be loaded is a problem at its ``tokenizer:``."""
    refs: list[tuple[str, TokenizerRef, PathT]] = []
    if scenario.tokenizer is not None:
        refs.append(("", scenario.tokenizer, ("tokenizer",)))
    for pid, provider in scenario.providers.items():
        ref = getattr(provider, "tokenizer", None)
        if isinstance(ref, TokenizerRef):
            refs.append((pid, ref, ("providers", pid, "tokenizer")))
    loaded: dict[TokenizerRef, Tokenizer] = {}
    found: dict[str, Tokenizer] = {}
    display_dir = os.path.dirname(source.file)
    for key, ref, path in refs:
        if ref.kind == "server":
            try:
                found[key] = _server_tokenizer(scenario, key, ref)
            except TokenizerError as exc:
                report.problems.append(
                    Problem(str(exc), pos=source.value_pos(path), path=format_path(path))
                )
            continue
        if ref not in loaded:
            try:
                loaded[ref] = load_tokenizer(ref.as_spec(), base_dir, display_dir)
            except TokenizerError as exc:
                report.problems.append(
                    Problem(str(exc), pos=source.value_pos(path), path=format_path(path))
                )
                continue
        found[key] = loaded[ref]
    return found


def _server_tokenizer(scenario: Scenario, key: str, ref: TokenizerRef) -> Tokenizer:
    """``tokenizer: server``: the openai-compatible provider whose server counts; a live
    tokenizer inside ``lens run``'s pre-flight, else the estimate under its name."""
    if key:
        raise TokenizerError(
            "server counts the scenario's prompts, so it goes at the top level "
            f"(tokenizer: {{server: auto, provider: {key}}}); lens never calls /tokenize "
            "during a run, so responses without usage are estimated"
        )
    compatible = [
        pid for pid, p in scenario.providers.items() if isinstance(p, OpenAICompatibleProvider)
    ]
    pid = ref.provider
    if pid and pid not in compatible:
        what = (
            "no provider" if pid not in scenario.providers else "not an openai-compatible provider"
        )
        raise TokenizerError(
            f"server: provider {pid} is {what}: the server that counts must be an "
            "openai-compatible provider's (llama.cpp's llama-server or vLLM)"
        )
    if not pid:
        if len(compatible) != 1:
            some = ", ".join(compatible) if compatible else "none"
            raise TokenizerError(
                "server needs the one openai-compatible provider (llama.cpp's "
                f"llama-server or vLLM) whose /tokenize counts; the scenario has {some}: name "
                "it with tokenizer: {server: auto, provider: ID}"
            )
        pid = compatible[0]
    provider = scenario.providers[pid]
    assert isinstance(provider, OpenAICompatibleProvider)
    key_value = provider.api_key.get_secret_value() if provider.api_key is not None else None
    flavour: Flavour = (
        "vllm" if ref.value == "vllm" else ("llamacpp" if ref.value == "llamacpp" else "auto")
    )
    target = ServerTarget(
        pid, origin_of(str(provider.base_url)), provider.model, flavour, key_value or None
    )
    session = current_session()
    return ServerEstimate(target) if session is None else session.tokenizer(target)


def _position_order(problem: Problem, file: str) -> tuple[int, str, int, int]:
    """The scenario's own problems first, top to bottom, then those in prompt files."""
    pos = problem.pos
    if pos is None:
        return (2, "", 0, 0)
    return (0 if pos.file == file else 1, pos.file, pos.line, pos.col)
