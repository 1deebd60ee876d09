"""Dataset prompts: read a dataset file, take each record's first turn, count, filter, sample.

Read when the scenario loads (like JSONL prompt files), so a bad line is reported with the
other scenario problems as ``file:line:col`` and what was expected, and the plan can list
how many prompts each source yields and how long they are before anything is sent.

Formats (``format:``):

* ``sharegpt``: a JSON array (or JSONL) of ``{"conversations": [{"from": "human", "value":
  ...}, {"from": "gpt", ...}]}``; the first human turn (after any system turn) is the prompt,
  the gpt turn after it the reference answer.  Conversations with no human turn are skipped
  (counted), as vLLM's and GuideLLM's ShareGPT loaders do.
* ``openai-chat-jsonl``: ``{"messages": [...]}`` a line; the messages up to the first user
  message are the prompt, the assistant message after it the reference.
* ``text-lines``: each non-blank line is one user message.
* ``csv``: a header row; ``column`` (default ``prompt``) holds the prompt, ``reference`` the
  answer.
* ``parquet`` (``pyarrow``) and ``hf`` (a local dataset folder saved by ``datasets``): the same
  columns; both need the optional extra ``lens[datasets]``.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lens.errors import Problem, SourcePos
from lens.scenario.model import ChatMessage, DatasetRequest, DatasetSpec
from lens.scenario.tokenizers import Tokenizer

MAX_PROBLEMS_PER_FILE = 20  # a wholly wrong file should not bury the other problems
SHAREGPT_USER = frozenset({"human", "user"})
SHAREGPT_ASSISTANT = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing"})
SHAREGPT_SYSTEM = frozenset({"system"})
_WHITESPACE = " \t\r\n"


class DatasetExtraMissing(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Record:
    key: str  # the prompt id's suffix: the line, or the item / row number
    where: str  # file:line or file[item]
    messages: tuple[ChatMessage, ...]
    reference: str | None
    # The conversation after the first user turn, as (role, text): user, assistant, or
    # another speaker (which ends the session there); read for turns: all.
    rest: tuple[tuple[str, str], ...] = ()


def _session(record: _Record) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """(user turns, the reply after each) of ``record``'s conversation: user and assistant
    alternate from the first user turn; the first break in that pattern (two user turns in
    a row, a turn of another speaker) ends the session, so every turn but the last has
    the dataset's reply."""
    turns = [record.messages[-1].content]
    replies: list[str | None] = [None]
    expect = "assistant"
    for role, text in record.rest:
        if role != expect or (role == "user" and not text.strip()):
            break
        if role == "assistant":
            replies[-1] = text
            expect = "user"
        else:
            turns.append(text)
            replies.append(None)
            expect = "assistant"
    return tuple(turns), tuple(replies)


@dataclass(slots=True)
class DatasetRead:
    """What a dataset gave: the sampled requests, and the counts the plan shows."""

    requests: tuple[DatasetRequest, ...] = ()
    records: int = 0  # prompts found in the file
    skipped: int = 0  # records with no prompt turn (sharegpt, openai-chat-jsonl)
    passed: int = 0  # prompts within the length filter


class _Problems:
    def __init__(self, display: str, prompt_id: str) -> None:
        self.display = display
        self.prompt_id = prompt_id
        self.items: list[Problem] = []

    def at(self, line: int, col: int, message: str, key: str = "") -> None:
        path = f"{self.prompt_id}#{key or line}"
        self.items.append(Problem(message, pos=SourcePos(self.display, line, col), path=path))

    @property
    def full(self) -> bool:
        return len(self.items) > MAX_PROBLEMS_PER_FILE


def read_dataset(
    path: Path,
    display: str,
    spec: DatasetSpec,
    *,
    prompt_id: str,
    where: SourcePos | None,
    tokenizer: Tokenizer,
    field: str = "",
) -> tuple[DatasetRead, list[Problem]]:
    """Read, count, filter and sample ``spec``'s dataset at ``path`` (shown as
    ``display``).  Problems inside the file name ``display:line:col``; problems with the
    dataset as a whole point at ``where`` (the ``dataset:`` value in the scenario), under the
    data path ``field`` (``prompts[0]``)."""
    field = field or f"prompt {prompt_id!r}"
    problems = _Problems(display, prompt_id)
    try:
        records, skipped = _records(path, display, spec, problems)
    except DatasetExtraMissing as exc:
        return DatasetRead(), [Problem(str(exc), pos=where, path=f"{field}.dataset.format")]
    except _Unreadable as exc:
        return DatasetRead(), [Problem(str(exc), pos=where, path=f"{field}.dataset.path")]
    found = problems.items
    if len(found) > MAX_PROBLEMS_PER_FILE:
        rest = len(found) - MAX_PROBLEMS_PER_FILE
        found = [*found[:MAX_PROBLEMS_PER_FILE], Problem(f"... and {rest} more in {display}")]
    if found:
        return DatasetRead(), found
    if not records:
        what = f" ({skipped} had no user turn)" if skipped else ""
        message = f"dataset {display} holds no prompt{what}"
        return DatasetRead(skipped=skipped), [Problem(message, pos=where, path=f"{field}.dataset")]

    lengths = _input_lengths(records, tokenizer)
    keep = list(range(len(records)))
    bounds = spec.filter
    if bounds is not None:
        low = bounds.min_input_tokens or 0
        high = bounds.max_input_tokens
        keep = [i for i in keep if lengths[i] >= low and (high is None or lengths[i] <= high)]
    read = DatasetRead(records=len(records), skipped=skipped, passed=len(keep))
    if spec.sample is not None:
        if spec.sample > len(keep):
            within = " within the filter" if bounds is not None else ""
            message = (
                f"sample: {spec.sample}, but dataset {display} has only {len(keep)} "
                f"prompt{'s' if len(keep) != 1 else ''}{within} (counted by {tokenizer.name})"
            )
            return read, [Problem(message, pos=where, path=f"{field}.dataset.sample")]
        keep = random.Random(spec.seed).sample(keep, spec.sample)
    elif not keep:
        message = (
            f"no prompt of dataset {display} is within the filter (counted by {tokenizer.name})"
        )
        return read, [Problem(message, pos=where, path=f"{field}.dataset.filter")]
    references: list[int | None] = [None] * len(keep)
    if spec.output_tokens == "from_dataset":
        texts = [(j, records[i].reference) for j, i in enumerate(keep)]
        given = [(j, text) for j, text in texts if text]
        for (j, _), n in zip(given, tokenizer.count_many([t for _, t in given]), strict=True):
            references[j] = max(1, n)
    sessions = {i: _session(records[i]) for i in keep} if spec.turns == "all" else {}
    read.requests = tuple(
        DatasetRequest(
            key=records[i].key,
            where=records[i].where,
            messages=records[i].messages,
            input_tokens=lengths[i],
            reference_tokens=references[j],
            turns=sessions[i][0] if sessions else (),
            replies=sessions[i][1] if sessions else (),
        )
        for j, i in enumerate(keep)
    )
    return read, []


def _input_lengths(records: list[_Record], tokenizer: Tokenizer) -> list[int]:
    """Tokens of each record's message texts (summed), in one batch."""
    texts = [m.content for r in records for m in r.messages]
    counts = iter(tokenizer.count_many(texts))
    return [sum(next(counts) for _ in r.messages) for r in records]


class _Unreadable(Exception):
    pass


def _read_text(path: Path, display: str, problems: _Problems) -> str | None:
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        directory = isinstance(exc, IsADirectoryError)
        reason = "it is a directory" if directory else (getattr(exc, "strerror", "") or str(exc))
        raise _Unreadable(f"cannot read dataset {display}: {reason}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.at(data[: exc.start].count(b"\n") + 1, 1, "not valid UTF-8 text")
        return None


def _records(
    path: Path, display: str, spec: DatasetSpec, problems: _Problems
) -> tuple[list[_Record], int]:
    fmt = spec.format
    if fmt == "parquet":
        return _parquet(path, display, spec, problems), 0
    if fmt == "hf":
        return _hf(path, display, spec, problems), 0
    text = _read_text(path, display, problems)
    if text is None:
        return [], 0
    if fmt == "text-lines":
        return _text_lines(text, display), 0
    if fmt == "csv":
        return _csv(text, display, spec, problems), 0
    if fmt == "openai-chat-jsonl":
        return _chat_jsonl(text, display, problems)
    return _sharegpt(text, display, spec.column or "conversations", problems)


def _text_lines(text: str, display: str) -> list[_Record]:
    return [
        _Record(str(n), f"{display}:{n}", (ChatMessage(role="user", content=line.strip()),), None)
        for n, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


def _json_lines(text: str, problems: _Problems) -> Iterator[tuple[int, Any]]:
    """(line, value) of each non-blank line that is JSON; the others become problems."""
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        if problems.full:
            return
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.at(number, exc.colno, f"invalid JSON: {exc.msg}")


def _json_items(text: str, problems: _Problems) -> Iterator[tuple[int, Any]]:
    """(line, item) of each item of a JSON array, with the line where the item starts."""
    decoder = json.JSONDecoder()
    i = _skip(text, 0)
    assert text[i] == "["
    i = _skip(text, i + 1)
    line, counted = 1, 0
    if i < len(text) and text[i] == "]":
        return
    while i < len(text):
        line += text.count("\n", counted, i)
        counted = i
        try:
            item, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            problems.at(exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")
            return
        yield line, item
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
        elif i < len(text) and text[i] == "]":
            return
        else:
            at = line + text.count("\n", counted, i)
            problems.at(at, 1, "invalid JSON: expected ',' or ']' after an array item")
            return
    problems.at(line, 1, "invalid JSON: the array is not closed")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _sharegpt(text: str, display: str, key: str, problems: _Problems) -> tuple[list[_Record], int]:
    start = _skip(text, 0)
    array = start < len(text) and text[start] == "["
    items = _json_items(text, problems) if array else _json_lines(text, problems)
    records: list[_Record] = []
    skipped = 0
    for n, (line, item) in enumerate(items, start=1):
        ident = str(n) if array else str(line)
        where = f"{display}[{n}]" if array else f"{display}:{line}"
        turns = item.get(key) if isinstance(item, dict) else None
        if not isinstance(turns, list):
            got = "not an object" if not isinstance(item, dict) else f"no {key!r} list"
            problems.at(
                line,
                1,
                f"expected a ShareGPT conversation like {{{key!r}: [{{'from': 'human', "
                f"'value': ...}}, ...]}} ({got})",
                ident,
            )
            continue
        parsed = _sharegpt_turns(turns)
        if isinstance(parsed, str):
            problems.at(line, 1, parsed, ident)
            continue
        if parsed is None:
            skipped += 1
            continue
        messages, reference, rest = parsed
        records.append(_Record(ident, where, messages, reference, rest))
    return records, skipped


def _sharegpt_turns(
    turns: list[Any],
) -> tuple[tuple[ChatMessage, ...], str | None, tuple[tuple[str, str], ...]] | str | None:
    """(prompt messages, reference, the turns after the prompt) of a conversation; None when
    it has no user turn; a string says what is wrong with it."""
    system: list[ChatMessage] = []
    for j, turn in enumerate(turns):
        speaker = turn.get("from") if isinstance(turn, dict) else None
        value = turn.get("value") if isinstance(turn, dict) else None
        if not isinstance(speaker, str) or not isinstance(value, str):
            return f"turn {j}: expected {{'from': 'human' | 'gpt' | 'system', 'value': TEXT}}"
        if speaker in SHAREGPT_SYSTEM:
            system.append(ChatMessage(role="system", content=value))
        elif speaker in SHAREGPT_USER:
            if not value.strip():
                return None
            reference = None
            if j + 1 < len(turns) and isinstance(turns[j + 1], dict):
                after = turns[j + 1]
                if after.get("from") in SHAREGPT_ASSISTANT and isinstance(after.get("value"), str):
                    reference = after["value"]
            rest = tuple(_sharegpt_role(t) for t in turns[j + 1 :])
            return (*system, ChatMessage(role="user", content=value)), reference, rest
        else:
            return None  # the conversation opens with the model: no first user turn
    return None


def _sharegpt_role(turn: Any) -> tuple[str, str]:
    """A later ShareGPT turn as (user | assistant | other, text)."""
    speaker = turn.get("from") if isinstance(turn, dict) else None
    value = turn.get("value") if isinstance(turn, dict) else None
    if not isinstance(value, str):
        return ("other", "")
    if speaker in SHAREGPT_USER:
        return ("user", value)
    if speaker in SHAREGPT_ASSISTANT:
        return ("assistant", value)
    return ("other", value)


def _chat_jsonl(text: str, display: str, problems: _Problems) -> tuple[list[_Record], int]:
    records: list[_Record] = []
    skipped = 0
    for line, item in _json_lines(text, problems):
        messages = item.get("messages") if isinstance(item, dict) else None
        if not isinstance(messages, list) or not messages:
            problems.at(line, 1, 'expected a JSON object like {"messages": [{"role": ...}]}')
            continue
        prompt: list[ChatMessage] = []
        reference: str | None = None
        rest: tuple[tuple[str, str], ...] = ()
        bad = False
        for j, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            content = m.get("content") if isinstance(m, dict) else None
            if role not in ("system", "developer", "user", "assistant") or not isinstance(
                content, str
            ):
                problems.at(
                    line,
                    1,
                    f"messages[{j}]: expected {{'role': system | developer | user | assistant, "
                    "'content': TEXT}",
                )
                bad = True
                break
            if prompt and prompt[-1].role == "user":
                reference = content if role == "assistant" else None
                rest = tuple(_chat_role(later) for later in messages[j:])
                break
            prompt.append(ChatMessage(role=role, content=content))
        if bad:
            continue
        if not prompt or prompt[-1].role != "user":
            skipped += 1
            continue
        records.append(_Record(str(line), f"{display}:{line}", tuple(prompt), reference, rest))
    return records, skipped


def _chat_role(message: Any) -> tuple[str, str]:
    """A later chat message as (user | assistant | other, text)."""
    role = message.get("role") if isinstance(message, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if role in ("user", "assistant") and isinstance(content, str):
        return (role, content)
    return ("other", "")


def _csv(text: str, display: str, spec: DatasetSpec, problems: _Problems) -> list[_Record]:
    column = spec.column or "prompt"
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    wanted = [column] + ([spec.reference] if spec.reference else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        shown = ", ".join(repr(h) for h in header) or "nothing"
        problems.at(
            1,
            1,
            f"no column {missing[0]!r} in the header row (it has {shown}): set the dataset's "
            "column: / reference:",
        )
        return []
    records: list[_Record] = []
    line = reader.line_num
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            value = row.get(column)
            if not value or not value.strip():
                continue
            reference = row.get(spec.reference) if spec.reference else None
            records.append(
                _Record(
                    str(start),
                    f"{display}:{start}",
                    (ChatMessage(role="user", content=value),),
                    reference or None,
                )
            )
    except csv.Error as exc:
        problems.at(reader.line_num, 1, f"invalid CSV: {exc}")
    return records


def _column_records(
    columns: dict[str, list[Any]], display: str, spec: DatasetSpec, problems: _Problems
) -> list[_Record]:
    column = spec.column or "prompt"
    wanted = [column] + ([spec.reference] if spec.reference else [])
    missing = [c for c in wanted if c not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in columns) or "nothing"
        problems.at(
            1,
            1,
            f"no column {missing[0]!r} (it has {shown}): set the dataset's column: / reference:",
        )
        return []
    prompts = columns[column]
    refs = columns[spec.reference] if spec.reference else [None] * len(prompts)
    records: list[_Record] = []
    for row, (value, reference) in enumerate(zip(prompts, refs, strict=True), start=1):
        if not isinstance(value, str):
            if value is not None:
                problems.at(1, 1, f"row {row}: column {column!r} is not text", str(row))
            continue
        if not value.strip():
            continue
        records.append(
            _Record(
                str(row),
                f"{display}[{row}]",
                (ChatMessage(role="user", content=value),),
                reference if isinstance(reference, str) and reference else None,
            )
        )
    return records


def _parquet(path: Path, display: str, spec: DatasetSpec, problems: _Problems) -> list[_Record]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional extra
    except ImportError:
        raise DatasetExtraMissing(
            "format: parquet needs pyarrow: pip install 'llm-latency-lens[datasets]'"
        ) from None
    if not path.is_file():
        raise _Unreadable(f"cannot read dataset {display}: no such file")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise _Unreadable(f"cannot read dataset {display} as Parquet: {exc}") from None
    names = [n for n in table.column_names if n in (spec.column or "prompt", spec.reference)]
    columns: dict[str, list[Any]] = {name: [] for name in table.column_names}
    columns.update({n: table.column(n).to_pylist() for n in names})
    return _column_records(columns, display, spec, problems)


def _hf(path: Path, display: str, spec: DatasetSpec, problems: _Problems) -> list[_Record]:
    if not path.exists():
        raise _Unreadable(
            f"no local dataset {display}: format: hf reads a dataset folder saved with "
            "datasets' save_to_disk; lens never downloads one (a hub name is not fetched): "
            "download it first and point path: at the local copy"
        )
    try:
        import datasets  # noqa: PLC0415 - optional extra
    except ImportError:
        raise DatasetExtraMissing(
            "format: hf needs the datasets library: pip install 'llm-latency-lens[datasets]'"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise _Unreadable(f"cannot load dataset folder {display}: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if spec.split not in loaded:
            splits = ", ".join(repr(s) for s in loaded)
            raise _Unreadable(f"dataset {display} has no split {spec.split!r} (it has {splits})")
        loaded = loaded[spec.split]
    columns: dict[str, list[Any]] = {name: [] for name in loaded.column_names}
    for name in (spec.column or "prompt", spec.reference):
        if name in columns:
            columns[name] = list(loaded[name])
    return _column_records(columns, display, spec, problems)
