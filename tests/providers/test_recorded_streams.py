"""Every recorded SSE stream in the shared fixture folder, checked against its sidecar.

The recordings live outside the repo (``../shared/data/recorded-streams/``, read-only, never
copied in); each ``<name>.sse`` has a ``<name>.json`` sidecar saying what the stream holds:
the number of text deltas, the usage numbers and the error, if any.  Each stream is fed
three ways: one read, one read per event (distinct stamps, to check TTFT vs TTFOT) and
small random reads; all three must agree on everything but the stamps.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lens.providers.anthropic import AnthropicDecoder
from lens.providers.azure_openai import AzureChatDecoder
from lens.providers.base import StreamDecoder, StreamOutcome
from lens.providers.gemini import GeminiDecoder
from lens.providers.openai_chat import OpenAIChatDecoder
from lens.providers.openai_responses import OpenAIResponsesDecoder
from lens.records import ErrorClass, TokenSource

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "recorded-streams"

# File-name prefix → decoder of that wire format.
DECODERS: tuple[tuple[str, Callable[[], StreamDecoder]], ...] = (
    ("anthropic_", AnthropicDecoder),
    ("gemini_", GeminiDecoder),
    ("openai_responses_", OpenAIResponsesDecoder),
    ("azure_responses_", OpenAIResponsesDecoder),
    ("azure_chat_", AzureChatDecoder),
    ("openai_chat_", OpenAIChatDecoder),
    ("groq_chat_", OpenAIChatDecoder),
)

_EVENT_END = re.compile(rb"(?:\r\n|\n|\r){2}")


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.sse")) if FIXTURES.is_dir() else []


def _params() -> list[Path | None]:
    return [*_fixtures()] or [None]


def _ids() -> list[str]:
    return [p.stem for p in _fixtures()] or ["no-fixtures"]


@pytest.fixture(params=_params(), ids=_ids())
def fixture(request: pytest.FixtureRequest) -> Path:
    path: Path | None = request.param
    if path is None:
        pytest.skip(f"recorded streams not found at {FIXTURES} (shared data folder absent)")
    return path


def _decoder(path: Path) -> Callable[[], StreamDecoder]:
    for prefix, factory in DECODERS:
        if path.name.startswith(prefix):
            return factory
    pytest.skip(f"no lens decoder is mapped to {path.name}")


def _expected(path: Path) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        pytest.skip(f"{path.name} has no .json sidecar")
    doc = json.loads(sidecar.read_text())
    expected: dict[str, Any] = doc["expected"]
    return expected


def _per_event(data: bytes) -> list[bytes]:
    """The body cut right after each event's blank line."""
    ends = [m.end() for m in _EVENT_END.finditer(data)]
    if not ends or ends[-1] != len(data):
        ends.append(len(data))
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _feed(factory: Callable[[], StreamDecoder], reads: list[bytes]) -> StreamOutcome:
    dec = factory()
    for i, part in enumerate(reads):
        dec.feed(part, i + 1)
    return dec.finish(len(reads) + 1, eof=True)


def _random_reads(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    reads, i = [], 0
    while i < len(data):
        n = rng.randint(1, 48)
        reads.append(data[i : i + n])
        i += n
    return reads


def _same_but_stamps(a: StreamOutcome, b: StreamOutcome) -> None:
    assert len(a.chunk_times) == len(b.chunk_times)
    assert a.chunk_tokens == b.chunk_tokens
    assert a.usage == b.usage
    assert a.token_source == b.token_source
    assert (a.error_class, a.error_message) == (b.error_class, b.error_message)
    assert a.events == b.events
    assert a.extra == b.extra


def _expected_error(exp: dict[str, Any]) -> tuple[ErrorClass, str] | None:
    err = exp.get("error") or exp.get("error_event")
    if err is None:
        return None
    data = err.get("data", err)  # Groq's sidecar wraps the payload as {"sse_event", "data"}
    inner = data.get("error", data)
    cls = (
        ErrorClass.OVERLOADED
        if inner.get("type") == "overloaded_error"
        else ErrorClass.STREAM_ERROR
    )
    return cls, str(inner["message"])


def test_recorded_stream_matches_its_sidecar(fixture: Path) -> None:
    factory = _decoder(fixture)
    exp = _expected(fixture)
    data = fixture.read_bytes()

    whole = _feed(factory, [data])
    events = _feed(factory, _per_event(data))
    _same_but_stamps(whole, events)
    for seed in range(3):
        _same_but_stamps(whole, _feed(factory, _random_reads(data, seed)))
    assert len(set(whole.chunk_times)) <= 1  # one read: one stamp shared by every event

    # Token-bearing deltas: text, plus reasoning and tool-call deltas where the sidecar has
    # them.  Reasoning always precedes text in these recordings, so with one read per event
    # the chunks before the first visible one are exactly the reasoning ones.
    visible_times = [
        t
        for t in events.chunk_times
        if events.t_first_visible is not None and t >= events.t_first_visible
    ]
    n_text = exp.get("n_text_deltas", exp.get("n_text_chunks"))
    counts = exp.get("event_type_counts", {})
    n_tool = counts.get("response.function_call_arguments.delta", 0)
    n_reasoning = exp.get(
        "n_thinking_deltas_nonempty", exp.get("n_thought_parts", exp.get("n_reasoning_deltas", 0))
    )
    assert len(visible_times) == n_text + n_tool
    assert len(events.chunk_times) == n_text + n_tool + n_reasoning
    if n_reasoning and n_text:
        assert events.t_first_token is not None
        assert events.t_first_visible is not None
        assert events.t_first_token < events.t_first_visible  # TTFT < TTFOT

    n_events = exp.get("n_sse_events", exp.get("n_sse_events_including_done"))
    if n_events is not None:
        assert whole.events == n_events

    # Usage, mapped per wire-formats.md §9.
    u = whole.usage
    if "usage_message_delta" in exp:  # Anthropic: input excludes cache on the wire
        final = exp["usage_message_delta"]
        start = exp["usage_message_start"]
        src = final or start
        lens_in = (
            src["input_tokens"]
            + src["cache_read_input_tokens"]
            + src["cache_creation_input_tokens"]
        )
        assert u.input_tokens == lens_in
        assert u.cached_input_tokens == src["cache_read_input_tokens"]
        assert u.cache_write_tokens == src["cache_creation_input_tokens"]
        assert u.reasoning_tokens is None
        if final is None:
            assert whole.token_source is TokenSource.ESTIMATED  # no final output count
        else:
            assert u.output_tokens == final["output_tokens"]
    else:
        for key in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            if key in exp:
                assert getattr(u, key) == exp[key], key
        if "thoughts_tokens" in exp:  # Gemini
            assert u.reasoning_tokens == exp["thoughts_tokens"]
            assert u.output_tokens == exp["output_tokens_candidates"] + exp["thoughts_tokens"]
    raw_usage = exp.get("usage_raw", exp.get("usage_last_chunk", exp.get("usage_message_delta")))
    if raw_usage is None and ("usage_raw" in exp or exp.get("usage_message_delta", 0) is None):
        assert whole.token_source is not TokenSource.USAGE
    if whole.token_source is TokenSource.USAGE:
        assert u.output_tokens is not None
        assert sum(whole.chunk_tokens) <= u.output_tokens  # hidden reasoning stays out

    # Errors.
    error = _expected_error(exp)
    if error is None and exp.get("final_status", "completed") == "completed":
        assert whole.error_class is None, whole.error_message
    else:
        assert error is not None
        assert (whole.error_class, whole.error_message) == (error[0], error[1][:300])

    if "finish_reason" in exp:
        assert whole.extra.get("stop_reason") == exp["finish_reason"]


def test_every_recorded_sse_has_a_decoder() -> None:
    if not _fixtures():
        pytest.skip(f"recorded streams not found at {FIXTURES}")
    unmapped = [p.name for p in _fixtures() if not any(p.name.startswith(d[0]) for d in DECODERS)]
    assert unmapped == []
