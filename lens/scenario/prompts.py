"""Prompt material that is not written inline: synthetic text and JSONL files.

Both are resolved when the scenario loads, so a missing file or a bad line is reported with
the other scenario problems, and compiling a plan never touches the file system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from lens.errors import Problem, SourcePos
from lens.scenario.env import interpolate
from lens.scenario.messages import explain
from lens.scenario.model import ChatMessage, FileRequest, FrozenModel, PositiveInt
from lens.scenario.tokenizers import ESTIMATE
from lens.scenario.yaml_nodes import format_path

MAX_PROBLEMS_PER_FILE = 20  # a wholly wrong file should not bury the other problems


def synthetic_text(input_tokens: int, seed: int) -> str:
    """Deterministic filler of about ``input_tokens`` tokens for ``seed``: exactly
    ``4 * input_tokens`` characters of lens's word list, so lens's estimate of it is exactly
    ``input_tokens`` (lens.scenario.tokenizers.EstimateTokenizer; real tokenizers count
    within ~15% of it, and make exact texts of their own with ``tokenizer:``)."""
    return ESTIMATE.text_of_length(input_tokens, seed)


class _JsonlLine(FrozenModel):
    """One line of a prompts file."""

    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    max_tokens: PositiveInt | None = None


def read_prompt_file(
    path: Path,
    display: str,
    *,
    prompt_id: str,
    where: SourcePos | None,
    env: Mapping[str, str] | None = None,
    used: list[str] | None = None,
) -> tuple[tuple[FileRequest, ...], list[Problem]]:
    """Parse a JSONL prompts file.

    Problems inside the file name ``display:line:col`` and the line's prompt id
    (``support#3.messages[0].role``); problems with the file as a whole point at ``where``,
    the ``file:`` value in the scenario.  Blank lines are skipped but keep their number, so
    ids and messages always match the line an editor shows.

    ``${VAR}`` in message contents is literal text unless ``env`` is given (the scenario says
    ``allow_env_in_prompts: true``); the names read are appended to ``used``.
    """
    field = f"prompt {prompt_id!r}"
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        directory = isinstance(exc, IsADirectoryError)
        reason = "it is a directory" if directory else (getattr(exc, "strerror", "") or str(exc))
        return (), [Problem(f"cannot read prompts file {display}: {reason}", pos=where, path=field)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        pos = SourcePos(display, line, 1)
        return (), [Problem("not valid UTF-8 text", pos=pos, path=f"{prompt_id}#{line}")]
    requests: list[FileRequest] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        line_id = f"{prompt_id}#{number}"
        request, found = _parse_line(raw.rstrip("\r"), display, line_id, number)
        if request is not None and env is not None:
            request, found = _expand(request, raw, env, display, line_id, used)
        problems.extend(found)
        if request is not None:
            requests.append(request)
    if len(problems) > MAX_PROBLEMS_PER_FILE:
        rest = len(problems) - MAX_PROBLEMS_PER_FILE
        problems = [*problems[:MAX_PROBLEMS_PER_FILE], Problem(f"... and {rest} more in {display}")]
    if not requests and not problems:
        message = f"prompts file {display} is empty: expected one JSON chat request per line"
        problems.append(Problem(message, pos=where, path=field))
    return tuple(requests), problems


def _expand(
    request: FileRequest,
    raw: str,
    env: Mapping[str, str],
    display: str,
    line_id: str,
    used: list[str] | None,
) -> tuple[FileRequest | None, list[Problem]]:
    """``request`` with ``${VAR}`` expanded in its message contents."""
    messages: list[ChatMessage] = []
    problems: list[Problem] = []
    seen = 0  # '${' of the earlier contents: the n-th of the line is the n-th in the raw JSON
    for i, message in enumerate(request.messages):
        result = interpolate(message.content, env)
        if used is not None:
            used.extend(result.variables)
        for problem in result.problems:
            nth = seen + message.content.count("${", 0, problem.offset)
            col = _nth_index(raw, "${", nth) + 1
            path = format_path((line_id, "messages", i, "content"))
            problems.append(
                Problem(problem.message, pos=SourcePos(display, request.line, col), path=path)
            )
        seen += message.content.count("${")
        messages.append(ChatMessage(role=message.role, content=result.value))
    if problems:
        return None, problems
    return FileRequest(request.line, tuple(messages), request.max_tokens), []


def _nth_index(text: str, sub: str, n: int) -> int:
    """Index of the ``n``-th (0-based) ``sub`` in ``text``; 0 when there are fewer."""
    index = -1
    for _ in range(n + 1):
        index = text.find(sub, index + 1)
        if index < 0:
            return 0
    return index


def _parse_line(
    raw: str, display: str, line_id: str, number: int
) -> tuple[FileRequest | None, list[Problem]]:
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        pos = SourcePos(display, number, exc.colno)
        return None, [Problem(f"invalid JSON: {exc.msg}", pos=pos, path=line_id)]
    pos = SourcePos(display, number, 1)
    if not isinstance(data, dict):
        message = 'expected a JSON object like {"messages": [...], "max_tokens": 50}'
        return None, [Problem(message, pos=pos, path=line_id)]
    try:
        line = _JsonlLine.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            explained = explain(error, _JsonlLine)
            if explained is None:
                continue
            path = format_path((line_id, *explained.path))
            problems.append(Problem(explained.message, pos=pos, path=path))
        return None, problems
    return FileRequest(number, line.messages, line.max_tokens), []
