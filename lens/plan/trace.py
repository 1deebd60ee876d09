"""Trace replay (``pattern: trace``): the schedule and the prompts of a trace's rows.

Row i of the trace (in its window) is request i: sent at ``times_s[i] / speedup`` from the
stage's start (an absolute schedule, as every open-loop pattern: the executor sleeps until
``t0 + offset`` and reports its lag), with a synthetic text of exactly the row's input
length in the scenario's tokenizer and ``max_tokens`` = its output length.

Rows with ``hash_ids`` (Mooncake) begin with one block of ``block_tokens`` tokens per id, the
text of a block a function of its id alone, so rows that share ids share that leading text
exactly, as the requests of the original trace shared their KV-cache blocks.  Only whole
blocks are used (``input // block_tokens`` of the ids at most: the trace's last block is
usually partial), and the rest of the input is the row's own tail.

Text is made when a request is sent, never for the whole trace: a plan holds the rows (about
30 bytes each), and a million-row trace does not become gigabytes of text.  A block's text
is made once and kept (up to ``BLOCK_CACHE`` blocks), so a shared block costs its
generation once; a tail costs about 0.1-0.2 ms per 1,000 tokens (generated before the
request's due time, see the executor).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lens.plan.model import Message, OffsetSource, PromptSpec, TraceSource
from lens.scenario.tokenizers import Tokenizer
from lens.scenario.traces import TraceTable

BLOCK_CACHE = 4096  # block texts kept (512 tokens: ~2 KB each, ~8 MB in all)
_RECENT = 256  # prompts a unit keeps after making them (the executor looks one up twice)


@dataclass(frozen=True, slots=True)
class TraceOffsets(OffsetSource):
    """Row i's time over the speedup: indexed in O(1)."""

    times_s: Any = field(repr=False)  # array('d'), trace time from the window's start
    speedup: float

    @property
    def random_access(self) -> bool:
        return True

    def count(self) -> int:
        return len(self.times_s)

    def offset(self, i: int) -> float:
        return float(self.times_s[i]) / self.speedup

    def __iter__(self) -> Iterator[float]:
        speedup = self.speedup
        return (t / speedup for t in self.times_s)

    def summary(self, start: int, step: int) -> tuple[int, float, float]:
        n = len(range(start, self.count(), step))
        if n == 0:
            return 0, 0.0, 0.0
        return n, self.offset(start), self.offset(start + (n - 1) * step)

    def __repr__(self) -> str:
        return f"TraceOffsets({self.count()} rows, speedup {self.speedup:g})"


@dataclass(frozen=True, slots=True, eq=False)
class TraceReplay(TraceSource):
    """What a trace unit sends: its rows, and how their text is made."""

    stage: str  # the trace stage's id: prompt ids are ``<stage>#<line>``
    table: TraceTable
    speedup: float
    block_tokens: int
    seed: int
    tokenizer: Tokenizer
    digest: str = ""  # sha256 of the rows: two traces never look alike in a plan's hash
    _blocks: dict[int, str] = field(default_factory=dict, repr=False)
    # trace_to_dict's result: each provider's unit of the stage shares this replay.
    _summary: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls,
        stage: str,
        table: TraceTable,
        *,
        speedup: float,
        block_tokens: int,
        seed: int,
        tokenizer: Tokenizer,
    ) -> TraceReplay:
        sha = hashlib.sha256()
        for part in (table.times_s, table.inputs, table.outputs, table.lines):
            sha.update(part.tobytes())
        for blocks in (table.block_ids, table.block_starts):
            sha.update(b"-" if blocks is None else blocks.tobytes())
        return cls(stage, table, speedup, block_tokens, seed, tokenizer, sha.hexdigest())

    def __len__(self) -> int:
        return len(self.table)

    def offsets(self) -> TraceOffsets:
        return TraceOffsets(self.table.times_s, self.speedup)

    def prompt_id(self, row: int) -> str:
        return f"{self.stage}#{self.table.lines[row]}"

    def row_of(self, prompt_id: str) -> int:
        """The row a prompt id names (KeyError if none): lines rise with rows."""
        stage, _, line = prompt_id.rpartition("#")
        if stage != self.stage or not line.isdigit():
            raise KeyError(prompt_id)
        lines = self.table.lines
        row = bisect.bisect_left(lines, int(line))
        if row == len(lines) or lines[row] != int(line):
            raise KeyError(prompt_id)
        return row

    def input_tokens(self, row: int) -> int:
        return max(1, int(self.table.inputs[row]))

    def output_tokens(self, row: int) -> int:
        # A row that generated nothing still asks for one token: max_tokens 0 is refused.
        return max(1, int(self.table.outputs[row]))

    def shared_blocks(self, row: int) -> tuple[int, ...]:
        """The row's hash ids that stand for whole blocks of its input."""
        ids = self.table.blocks_of(row)
        return ids[: self.input_tokens(row) // self.block_tokens]

    def text(self, row: int) -> str:
        """The row's text: its shared blocks, then its own tail, exactly its input length."""
        total = self.input_tokens(row)
        tok = self.tokenizer
        seed = _seed("lens-trace-row", self.seed, int(self.table.lines[row]))
        ids = self.shared_blocks(row)
        if not ids:
            return tok.text_of_length(total, seed)
        head = tok.join([self._block(h) for h in ids])
        return tok.text_after(head, total, seed)

    def _block(self, hash_id: int) -> str:
        cached = self._blocks.get(hash_id)
        if cached is not None:
            return cached
        text = self.tokenizer.text_of_length(
            self.block_tokens, _seed("lens-trace-block", self.seed, hash_id)
        )
        if len(self._blocks) >= BLOCK_CACHE:
            self._blocks.pop(next(iter(self._blocks)))  # the oldest made
        self._blocks[hash_id] = text
        return text

    def prompt(self, row: int, body: Mapping[str, Any]) -> PromptSpec:
        line = int(self.table.lines[row])
        return PromptSpec(
            self.prompt_id(row),
            (Message("user", self.text(row)),),
            self.output_tokens(row),
            1.0,
            f"{self.table.file}:{line}",
            body=body,
            input_tokens=self.input_tokens(row),
        )

    def sizing_prompt(self, row: int) -> PromptSpec:
        """Row ``row`` without its text (lengths only), for cost bounds."""
        return PromptSpec(
            self.prompt_id(row),
            (),
            self.output_tokens(row),
            input_tokens=self.input_tokens(row),
        )

    def rate_buckets(self, buckets: int = 12) -> tuple[float, list[int]]:
        """Requests per bucket over the replay (after speedup): (bucket seconds, counts)."""
        n = len(self.table)
        last = float(self.table.times_s[n - 1]) / self.speedup if n else 0.0
        width = last / buckets if last > 0 else 1.0
        counts = [0] * (buckets if last > 0 else 1)
        for t in self.table.times_s:
            k = min(int(t / self.speedup / width), len(counts) - 1)
            counts[k] += 1
        return width, counts

    def __repr__(self) -> str:
        return (
            f"TraceReplay({self.table.file}, {self.table.format}, {len(self)} rows, speedup "
            f"{self.speedup:g}, block_tokens {self.block_tokens}, seed {self.seed}, "
            f"sha256 {self.digest[:16]})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # To a worker process: the rows, not the block texts made so far.
        return (
            TraceReplay,
            (
                self.stage,
                self.table,
                self.speedup,
                self.block_tokens,
                self.seed,
                self.tokenizer,
                self.digest,
            ),
        )

    def prompts(self, body: Mapping[str, Any]) -> TracePrompts:
        return TracePrompts(self, body)


def _seed(kind: str, seed: int, value: int) -> int:
    digest = hashlib.sha256(f"{kind}:{seed}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class TracePrompts(Mapping[str, PromptSpec]):
    """A trace unit's prompts by id, made when looked up (with the unit's ``body``): the
    mapping the executor reads, without the whole trace's text ever existing at once."""

    def __init__(self, replay: TraceReplay, body: Mapping[str, Any]) -> None:
        self.replay = replay
        self.body = dict(body)
        self._recent: dict[int, PromptSpec] = {}

    def __getitem__(self, key: str) -> PromptSpec:
        row = self.replay.row_of(key)
        spec = self._recent.get(row)
        if spec is None:
            spec = self.replay.prompt(row, self.body)
            if len(self._recent) >= _RECENT:
                self._recent.pop(next(iter(self._recent)))
            self._recent[row] = spec
        return spec

    def __iter__(self) -> Iterator[str]:
        return (self.replay.prompt_id(row) for row in range(len(self.replay)))

    def __len__(self) -> int:
        return len(self.replay)


def trace_to_dict(replay: TraceReplay) -> dict[str, Any]:
    """What a trace unit replays, for ``lens plan``: the rows, their lengths, and the rate
    over the replay (requests per bucket of ``bucket_s``, after the speedup)."""
    if replay._summary:
        return dict(replay._summary)
    table = replay.table
    inputs = sorted(replay.input_tokens(r) for r in range(len(replay)))
    outputs = sorted(replay.output_tokens(r) for r in range(len(replay)))
    width, counts = replay.rate_buckets()
    shared = sum(1 for r in range(len(replay)) if replay.shared_blocks(r))
    replay._summary.update(
        {
            "file": table.file,
            "format": table.format,
            "rows": len(replay),
            "rows_read": table.rows_read,
            "trace_span_s": table.span_s,
            "speedup": replay.speedup,
            "block_tokens": replay.block_tokens,
            "rows_with_shared_blocks": shared,
            "input_tokens": _lengths(inputs),
            "output_tokens": _lengths(outputs),
            "bucket_s": width,
            "requests_per_bucket": counts,
            "sha256": replay.digest,
        }
    )
    return dict(replay._summary)


def _lengths(ordered: list[int]) -> dict[str, int]:
    def rank(q: float) -> int:  # nearest rank
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0

    return {
        "min": ordered[0] if ordered else 0,
        "p50": rank(0.5),
        "p90": rank(0.9),
        "max": ordered[-1] if ordered else 0,
        "total": sum(ordered),
    }
