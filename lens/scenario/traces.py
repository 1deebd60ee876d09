"""Request traces to replay (``pattern: trace``): when each request came, and how long its
input and output were.

Three formats:

* ``azure``: the Azure LLM inference trace CSV, ``TIMESTAMP,ContextTokens,GeneratedTokens``
  with datetimes (``2023-11-16 18:15:46.6805900``);
* ``mooncake``: JSON lines ``{"timestamp": ms, "input_length": n, "output_length": n,
  "hash_ids": [...]}`` (``hash_ids`` optional: one id per block of ``block_tokens`` input
  tokens; equal ids are equal text);
* ``jsonl``: lens's own JSON lines ``{"time_s": s, "input_tokens": n, "output_tokens": n,
  "hash_ids": [...]}`` (``hash_ids`` optional, as in mooncake).

The file is read when the scenario loads, like prompt files, so a bad line is reported with
the other scenario problems as ``file:line:col``.  Only the rows inside the stage's window
are kept, in compact arrays (about 30 bytes a row, plus its hash ids): no text is made
here.  Rows must come in time order (traces are written that way); a row earlier than the
one before is an error, not silently reordered.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal

from lens.errors import Problem, SourcePos

TraceFormat = Literal["azure", "mooncake", "jsonl"]
MAX_PROBLEMS = 20  # a wholly wrong file should not bury the other problems
_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
# (time field, its units per second, input field, output field) of the JSON-lines formats.
_JSON_FIELDS: dict[str, tuple[str, int, str, str]] = {
    "mooncake": ("timestamp", 1000, "input_length", "output_length"),
    "jsonl": ("time_s", 1, "input_tokens", "output_tokens"),
}
_EPOCH = datetime(1970, 1, 1)
_INT64 = (-(2**63), 2**63)  # hash ids are kept in a flat array of 64-bit integers
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class TraceTable:
    """The rows of a trace inside a window, in time order.

    ``times_s[i]`` is row i's time from the start of the window, in trace time (before any
    speedup); ``lines[i]`` its line in the file; its hash ids are ``block_ids[block_starts[i]:
    block_starts[i + 1]]`` (one flat array: no Python object per id).
    """

    file: str
    format: TraceFormat
    times_s: array[float] = field(default_factory=lambda: array("d"))
    inputs: array[int] = field(default_factory=lambda: array("q"))
    outputs: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    block_ids: array[int] | None = None  # None: no row has hash ids
    block_starts: array[int] | None = None
    rows_read: int = 0  # rows in the file, window or not
    span_s: float = 0.0  # from the file's first row to its last, trace time

    def __len__(self) -> int:
        return len(self.times_s)

    def blocks_of(self, row: int) -> tuple[int, ...]:
        if self.block_ids is None or self.block_starts is None:
            return ()
        return tuple(self.block_ids[self.block_starts[row] : self.block_starts[row + 1]])


@dataclass(slots=True)
class _Rows:
    # Times in the file's own unit (ms, us, s) as written, and that unit's count per second:
    # differences are taken before dividing, so offsets are as exact as the file.
    per_s: int = 1
    times: list[float] = field(default_factory=list)
    inputs: array[int] = field(default_factory=lambda: array("q"))
    outputs: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    block_ids: array[int] = field(default_factory=lambda: array("q"))
    block_starts: array[int] = field(default_factory=lambda: array("q", [0]))
    problems: list[Problem] = field(default_factory=list)


def read_trace(
    path: Path,
    display: str,
    fmt: TraceFormat,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    where: SourcePos | None = None,
    field_path: str = "",
) -> tuple[TraceTable | None, list[Problem]]:
    """The rows of the trace at ``path`` whose time from the file's first row is in
    [``start_s``, ``start_s + duration_s``), timed from ``start_s``.  Problems inside the file
    name ``display:line:col``; problems with the file as a whole point at ``where``."""
    rows = _Rows()
    try:
        with path.open("rb") as file:
            lines = _lines(file, display, rows)
            if fmt == "azure":
                _read_azure(lines, display, rows)
            else:
                _read_json_lines(lines, display, fmt, rows)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        directory = isinstance(exc, IsADirectoryError)
        reason = "it is a directory" if directory else (getattr(exc, "strerror", "") or str(exc))
        return None, [Problem(f"cannot read trace {display}: {reason}", pos=where, path=field_path)]
    problems = rows.problems
    if len(problems) > MAX_PROBLEMS:
        # Reading stopped there: a wholly wrong file (another format) is not read to its end.
        problems = [*problems[:MAX_PROBLEMS], Problem(f"... and more in {display}")]
    if problems:
        return None, problems
    if not rows.times:
        message = f"trace {display} has no requests"
        return None, [Problem(message, pos=where, path=field_path)]
    return _window(rows, display, fmt, start_s, duration_s), []


def _window(
    rows: _Rows, display: str, fmt: TraceFormat, start_s: float, duration_s: float | None
) -> TraceTable:
    first, per_s = rows.times[0], rows.per_s
    since = [(t - first) / per_s for t in rows.times]
    end = None if duration_s is None else start_s + duration_s
    kept = [i for i, t in enumerate(since) if start_s <= t and (end is None or t < end)]
    any_blocks = len(rows.block_ids) > 0
    ids, starts = array("q"), array("q", [0])
    if any_blocks:
        for i in kept:
            ids.extend(rows.block_ids[rows.block_starts[i] : rows.block_starts[i + 1]])
            starts.append(len(ids))
    return TraceTable(
        file=display,
        format=fmt,
        times_s=array("d", (since[i] - start_s if start_s else since[i] for i in kept)),
        inputs=array("q", (rows.inputs[i] for i in kept)),
        outputs=array("q", (rows.outputs[i] for i in kept)),
        lines=array("q", (rows.lines[i] for i in kept)),
        block_ids=ids if any_blocks else None,
        block_starts=starts if any_blocks else None,
        rows_read=len(rows.times),
        span_s=since[-1],
    )


def _add(
    rows: _Rows, pos: SourcePos, t: float, n_in: int, n_out: int, ids: tuple[int, ...]
) -> None:
    if rows.times and t < rows.times[-1]:
        rows.problems.append(
            Problem(
                f"the time goes back ({(t - rows.times[-1]) / rows.per_s:+.3f}s from the row "
                "before): a trace "
                "is replayed in order; sort the file by time",
                pos=pos,
            )
        )
        return
    rows.times.append(t)
    rows.inputs.append(n_in)
    rows.outputs.append(n_out)
    rows.lines.append(pos.line)
    rows.block_ids.extend(ids)
    rows.block_starts.append(len(rows.block_ids))


def _lines(file: BinaryIO, display: str, rows: _Rows) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line that is not blank, read one at a time (a trace may
    be gigabytes); stops after a line that is not UTF-8, or once ``MAX_PROBLEMS`` are found."""
    for number, data in enumerate(file, start=1):
        if len(rows.problems) > MAX_PROBLEMS:
            return
        try:
            raw = data.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            pos = SourcePos(display, number, exc.start + 1)
            rows.problems.append(Problem("not valid UTF-8 text", pos=pos))
            return
        if raw.strip():
            yield number, raw


def _read_azure(lines: Iterator[tuple[int, str]], display: str, rows: _Rows) -> None:
    rows.per_s = 1_000_000
    first = next(lines, None)
    if first is None:
        return
    header_line, header_text = first
    header = next(csv.reader([header_text]))
    names = [h.strip() for h in header]
    index: dict[str, int] = {}
    for column in _AZURE_COLUMNS:
        found = [i for i, n in enumerate(names) if n.lower() == column.lower()]
        if not found:
            rows.problems.append(
                Problem(
                    f"an azure trace needs the columns {', '.join(_AZURE_COLUMNS)}; "
                    f"{column} is missing (the header has {', '.join(names) or 'nothing'})",
                    pos=SourcePos(display, header_line, 1),
                )
            )
            return
        index[column] = found[0]
    for number, raw in lines:
        cells = next(csv.reader(io.StringIO(raw)))
        starts = _cell_starts(raw)
        values: list[Any] = []
        for column in _AZURE_COLUMNS:
            i = index[column]
            col = starts[i] + 1 if i < len(starts) else len(raw) + 1
            pos = SourcePos(display, number, col)
            cell = cells[i].strip() if i < len(cells) else ""
            value = _azure_cell(column, cell)
            if value is None:
                expected = "a date and time" if column == "TIMESTAMP" else "a whole number"
                shown = repr(cell) if cell else "nothing"
                rows.problems.append(
                    Problem(f"{column}: expected {expected}, got {shown}", pos=pos)
                )
                break
            values.append(value)
        else:
            when, n_in, n_out = values
            _add(rows, SourcePos(display, number, 1), when, n_in, n_out, ())


def _cell_starts(raw: str) -> list[int]:
    """Where each comma-separated cell of ``raw`` starts (quotes are not expected in a
    trace; a quoted comma only shifts the columns named in messages)."""
    starts = [0]
    for i, ch in enumerate(raw):
        if ch == ",":
            starts.append(i + 1)
    return starts


def _azure_cell(column: str, cell: str) -> float | int | None:
    if column == "TIMESTAMP":
        try:
            when = datetime.fromisoformat(cell)
        except ValueError:
            return None
        if when.tzinfo is not None:
            when = when.astimezone(UTC).replace(tzinfo=None)
        return (when - _EPOCH) // _US  # whole microseconds: differences stay exact
    return _count(cell)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _read_json_lines(
    lines: Iterator[tuple[int, str]], display: str, fmt: TraceFormat, rows: _Rows
) -> None:
    time_key, per_s, in_key, out_key = _JSON_FIELDS[fmt]
    rows.per_s = per_s
    for number, raw in lines:
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            pos = SourcePos(display, number, exc.colno)
            rows.problems.append(Problem(f"invalid JSON: {exc.msg}", pos=pos))
            continue
        if not isinstance(item, dict):
            example = f'{{"{time_key}": ..., "{in_key}": ..., "{out_key}": ...}}'
            rows.problems.append(
                Problem(f"expected a JSON object like {example}", pos=SourcePos(display, number, 1))
            )
            continue

        def at(key: str, raw: str = raw, number: int = number) -> SourcePos:
            found = raw.find(f'"{key}"')
            return SourcePos(display, number, found + 1 if found >= 0 else 1)

        time = item.get(time_key)
        if isinstance(time, bool) or not isinstance(time, int | float) or time < 0:
            got = "nothing" if time_key not in item else json.dumps(time)
            unit_name = "milliseconds" if per_s != 1 else "seconds"
            message = f"{time_key}: expected a number of {unit_name} (at least 0), got {got}"
            rows.problems.append(Problem(message, pos=at(time_key)))
            continue
        counts = []
        for key in (in_key, out_key):
            n = _count(item.get(key))
            least = 1 if key == in_key else 0
            if n is None or n < least or isinstance(item.get(key), str):
                got = "nothing" if key not in item else json.dumps(item.get(key))
                message = f"{key}: expected a whole number of tokens (at least {least}), got {got}"
                rows.problems.append(Problem(message, pos=at(key)))
                break
            counts.append(n)
        else:
            ids = item.get("hash_ids", [])
            if not isinstance(ids, list) or any(
                isinstance(h, bool) or not isinstance(h, int) or not _INT64[0] <= h < _INT64[1]
                for h in ids
            ):
                message = f"hash_ids: expected a list of whole numbers, got {json.dumps(ids)}"
                rows.problems.append(Problem(message, pos=at("hash_ids")))
                continue
            pos = SourcePos(display, number, 1)
            _add(rows, pos, time, counts[0], counts[1], tuple(ids))
