from __future__ import annotations

import base64
import binascii
import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.providers.bedrock_stream import (
    ConverseStreamDecoder,
    InvokeStreamDecoder,
    _EventStreamDecoder,
    converse_usage,
)
from lens.records import ErrorClass, TokenSource
from tests.providers.test_bedrock_eventstream import (
    block_stop,
    chunk,
    error_frame,
    event,
    exception,
    frame,
    message_start,
    message_stop,
    metadata,
    reasoning,
    reasoning_signature,
    recorded,
    recorded_json,
    text,
    tool_input,
    tool_start,
)

Decoder = ConverseStreamDecoder | InvokeStreamDecoder


def run(dec: Decoder, parts: list[bytes], *, t0: int = 100, step: int = 100) -> None:
    """Feed each part as one read, stamped t0, t0+step, …"""
    for i, part in enumerate(parts):
        dec.feed(part, t0 + i * step)


def split_messages(body: bytes) -> list[bytes]:
    """An eventstream body cut at its message boundaries (prelude total lengths)."""
    out = []
    while body:
        (total,) = struct.unpack(">I", body[:4])
        out.append(body[:total])
        body = body[total:]
    return out


# --- ConverseStream ------------------------------------------------------------------------


def test_every_converse_event_in_one_stream() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            message_start(),
            text("Hel"),
            text(""),  # an empty text delta is not a token
            text("lo"),
            block_stop(0),
            message_stop("end_turn"),
            metadata(13, 2, latency_ms=522),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.error_message is None
    assert out.chunk_times == (200, 400)
    assert out.chunk_tokens == (1, 1)
    assert out.t_first_token == out.t_first_visible == 200
    assert out.t_last_token == 400
    assert out.usage.input_tokens == 13
    assert out.usage.output_tokens == 2
    assert out.usage.cached_input_tokens is None
    assert out.usage.reasoning_tokens is None
    assert out.token_source is TokenSource.USAGE
    assert out.events == 7
    assert out.extra == {"stop_reason": "end_turn", "bedrock_latency_ms": "522"}


def test_reasoning_then_text_first_token_before_first_visible() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            message_start(),
            reasoning("Let me think"),
            reasoning(""),
            reasoning_signature(),  # opaque, not a token
            event(
                "contentBlockDelta", {"delta": {"reasoningContent": {"redactedContent": "e30="}}}
            ),
            block_stop(0),
            text("Hi!", index=1),
            block_stop(1),
            message_stop(),
            metadata(36, 12),
        ],
    )
    out = dec.finish(2000, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (200, 700)
    assert out.t_first_token == 200
    assert out.t_first_visible == 700
    assert out.t_first_token < out.t_first_visible
    assert sum(out.chunk_tokens) == 12  # reasoning is inside outputTokens
    assert dec._timeline.reasoning_chars == len("Let me think")


def test_tool_use_deltas_are_visible_tokens() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            message_start(),
            text("Checking.", index=0),
            block_stop(0),
            tool_start(1),  # the tool's name: not a token
            tool_input('{"city":', 1),
            tool_input("", 1),
            tool_input('"Paris"}', 1),
            block_stop(1),
            message_stop("tool_use"),
            metadata(50, 9),
        ],
    )
    out = dec.finish(2000, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (200, 500, 700)
    assert out.t_first_visible == 200
    assert out.extra["stop_reason"] == "tool_use"
    assert sum(out.chunk_tokens) == 9


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # cache reads and writes come on top of inputTokens (totalTokens agrees)
        (
            {
                "inputTokens": 10,
                "outputTokens": 5,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 20,
                "totalTokens": 135,
            },
            (130, 5, 100, 20),
        ),
        # no totalTokens: the documented reading (cache excluded) is applied
        ({"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 100}, (110, 5, 100, None)),
        # totalTokens says inputTokens already holds the cache: taken as is
        (
            {
                "inputTokens": 110,
                "outputTokens": 5,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 0,
                "totalTokens": 115,
            },
            (110, 5, 100, 0),
        ),
        # zero cache: nothing to decide
        (
            {
                "inputTokens": 13,
                "outputTokens": 82,
                "cacheReadInputTokens": 0,
                "cacheWriteInputTokens": 0,
                "totalTokens": 95,
            },
            (13, 82, 0, 0),
        ),
        ({"outputTokens": 5, "inputTokens": "x"}, (None, 5, None, None)),
        ({}, (None, None, None, None)),
    ],
)
def test_converse_usage_mapping(
    raw: dict[str, Any], expected: tuple[int | None, int | None, int | None, int | None]
) -> None:
    u = converse_usage(raw)
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_write_tokens) == (
        expected
    )
    assert u.reasoning_tokens is None


def test_usage_with_cache_through_the_decoder() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            message_start(),
            text("ok"),
            message_stop(),
            metadata(10, 1, cache_read=1000, cache_write=24, latency_ms=87),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.usage.input_tokens == 1034
    assert out.usage.cached_input_tokens == 1000
    assert out.usage.cache_write_tokens == 24
    assert out.extra["bedrock_latency_ms"] == "87"


def test_metadata_missing_is_complete_with_estimated_tokens() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("Hello there"), message_stop()])
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.token_source is TokenSource.ESTIMATED
    assert out.usage.output_tokens == 3  # 11 characters, ~4 per token
    assert out.usage.input_tokens is None
    assert "bedrock_latency_ms" not in out.extra


def test_metadata_without_metrics_or_usage() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [text("Hi"), message_stop(), event("metadata", {"metrics": "n/a", "usage": 3})])
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.extra == {"stop_reason": "end_turn"}
    assert out.token_source is TokenSource.ESTIMATED


def test_eof_before_message_stop_is_a_cut_stream() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("Hel"), text("lo")])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended before messageStop"
    assert out.chunk_times == (200, 300)
    assert out.token_source is TokenSource.ESTIMATED


def test_connection_lost_is_a_cut_stream_even_after_message_stop() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("Hi"), message_stop()])
    out = dec.finish(900, eof=False)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "connection lost mid-stream"


def test_eof_inside_a_message_is_a_cut_stream() -> None:
    last = metadata(5, 1)
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("Hi"), message_stop(), last[:20]])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert (
        out.error_message == "stream ended inside an event-stream message (20 bytes of it arrived)"
    )
    assert out.events == 3


@pytest.mark.parametrize(
    ("name", "error_class"),
    [
        ("throttlingException", ErrorClass.HTTP_429),
        ("serviceUnavailableException", ErrorClass.OVERLOADED),
        ("modelStreamErrorException", ErrorClass.STREAM_ERROR),
        ("internalServerException", ErrorClass.STREAM_ERROR),
        ("validationException", ErrorClass.STREAM_ERROR),
        ("modelTimeoutException", ErrorClass.STREAM_ERROR),
        ("someFutureException", ErrorClass.STREAM_ERROR),
    ],
)
def test_exception_frames(name: str, error_class: ErrorClass) -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("Partial"), exception(name, {"message": "Too much"})])
    out = dec.finish(900, eof=True)
    assert out.error_class is error_class
    assert out.error_message == f"{name}: Too much"
    assert out.chunk_times == (200,)  # what arrived before the failure is kept
    assert out.events == 3


def test_model_stream_error_keeps_the_models_own_status() -> None:
    doc = {
        "message": "Model Stream Error",
        "originalStatusCode": 500,
        "originalMessage": "The model stream failed.",
    }
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), exception("modelStreamErrorException", doc)])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == (
        "modelStreamErrorException: Model Stream Error (model said: 500, The model stream failed.)"
    )


def test_exception_frame_with_odd_payloads() -> None:
    headers = [(":message-type", "exception"), (":exception-type", "internalServerException")]
    dec = ConverseStreamDecoder()
    dec.feed(frame(headers, b"not json"), 10)
    assert dec.finish(20, eof=True).error_message == "internalServerException: not json"

    dec = ConverseStreamDecoder()
    dec.feed(frame([(":message-type", "exception")], b'{"Message":"Capitalised"}'), 10)
    assert dec.finish(20, eof=True).error_message == "exception: Capitalised"

    dec = ConverseStreamDecoder()
    dec.feed(frame([(":message-type", "exception")], b""), 10)
    assert dec.finish(20, eof=True).error_message == "exception: exception frame in stream"


def test_byte_array_headers_are_read_as_text() -> None:
    headers = [(":message-type", b"exception"), (":exception-type", b"throttlingException")]
    dec = ConverseStreamDecoder()
    dec.feed(frame(headers, b'{"message":"slow down"}'), 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.HTTP_429
    assert out.error_message == "throttlingException: slow down"


def test_error_message_frame() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text("x"), error_frame("InternalFailure", "Something broke")])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "InternalFailure: Something broke"

    dec = ConverseStreamDecoder()
    dec.feed(frame([(":message-type", "error")]), 10)
    assert dec.finish(20, eof=True).error_message == "error: error frame in stream"


def test_first_failure_wins() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            exception("throttlingException", {"message": "slow down"}),
            exception("internalServerException", {"message": "echo"}),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.HTTP_429
    assert out.error_message == "throttlingException: slow down"


def test_corrupt_message_crc_is_a_stream_error_and_stops_decoding() -> None:
    good = text("Hello")
    bad = bytearray(text("World"))
    bad[-10] ^= 0xFF  # a payload byte: the message CRC no longer matches
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), good, bytes(bad), text("ignored"), message_stop()])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("corrupt event stream: ")
    assert "Checksum mismatch" in out.error_message
    assert out.chunk_times == (200,)
    assert out.events == 2


def test_corrupt_prelude_crc_is_a_stream_error() -> None:
    bad = bytearray(message_start())
    bad[3] ^= 0x01  # total length: the prelude CRC no longer matches
    dec = ConverseStreamDecoder()
    dec.feed(bytes(bad), 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("corrupt event stream")


def test_oversized_headers_length_is_a_stream_error() -> None:
    prelude = struct.pack(">II", 200_000, 150_000)  # headers > 128 KiB: not an event stream
    prelude += struct.pack(">I", binascii.crc32(prelude))
    dec = ConverseStreamDecoder()
    dec.feed(prelude + b"\0" * 20, 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("corrupt event stream")


def test_crc_valid_nonsense_header_is_a_stream_error() -> None:
    block = b"\x03abc\x2a"  # header type 42 does not exist
    prelude = struct.pack(">II", 12 + len(block) + 4, len(block))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    body = prelude + block
    body += struct.pack(">I", binascii.crc32(body))
    dec = ConverseStreamDecoder()
    dec.feed(body, 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("corrupt event stream")


def test_unparseable_payload_is_a_stream_error() -> None:
    headers = [(":event-type", "contentBlockDelta"), (":message-type", "event")]
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), frame(headers, b"{nope"), message_stop()])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event payload")


def test_unknown_events_message_types_and_shapes_are_ignored() -> None:
    dec = ConverseStreamDecoder()
    run(
        dec,
        [
            message_start(),
            event("someNewEvent", {"x": 1}),
            frame([(":message-type", "telemetry")], b"{}"),
            event("contentBlockDelta", {"delta": "not a dict"}),
            event("contentBlockDelta", {"delta": {"citation": {"title": "x"}}}),
            event("contentBlockDelta", {"delta": {"reasoningContent": {"text": 7}}}),
            event("contentBlockDelta", {"delta": {"toolUse": {"input": None}}}),
            frame([(":event-type", "contentBlockDelta"), (":message-type", "event")], b"[1]"),
            text("Real"),
            event("messageStop", {"stopReason": None}),
            metadata(1, 1, latency_ms=None),
        ],
    )
    dec.feed(b"", 5000)  # an empty read changes nothing
    out = dec.finish(9000, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (900,)
    assert out.extra == {}
    assert out.events == 11


def test_the_shared_base_knows_no_event() -> None:
    dec = _EventStreamDecoder()
    dec.feed(text("Hi") + message_stop() + metadata(1, 1), 10)
    out = dec.finish(20, eof=True)
    assert out.events == 3
    assert out.usage.output_tokens is None
    assert out.error_class is ErrorClass.CUT_STREAM


def test_stream_without_tokens_is_empty() -> None:
    dec = ConverseStreamDecoder()
    run(dec, [message_start(), text(""), message_stop(), metadata(5, 0)])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.EMPTY


SMALL = [message_start(), text("The"), text(" capital"), message_stop(), metadata(3, 2)]


def _ends(parts: list[bytes]) -> list[int]:
    ends, pos = [], 0
    for part in parts:
        pos += len(part)
        ends.append(pos)
    return ends


def test_split_at_every_byte_boundary_gives_the_same_outcome() -> None:
    body = b"".join(SMALL)
    whole = ConverseStreamDecoder()
    whole.feed(body, 100)
    ref = whole.finish(500, eof=True)
    assert ref.error_class is None
    token_ends = _ends(SMALL)[1:3]  # the two text messages
    for cut in range(len(body) + 1):
        dec = ConverseStreamDecoder()
        dec.feed(body[:cut], 100)
        dec.feed(body[cut:], 200)
        out = dec.finish(500, eof=True)
        # Each token is stamped with the read that completed its message.
        assert out.chunk_times == tuple(100 if end <= cut else 200 for end in token_ends), cut
        assert (out.usage, out.chunk_tokens, out.events, out.extra, out.error_class) == (
            ref.usage,
            ref.chunk_tokens,
            ref.events,
            ref.extra,
            ref.error_class,
        ), cut


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(b"".join(SMALL))), max_size=12))
def test_any_read_pattern_gives_the_same_outcome(cuts: list[int]) -> None:
    body = b"".join(SMALL)
    points = sorted({0, len(body), *cuts})
    dec = ConverseStreamDecoder()
    for i, (a, b) in enumerate(itertools.pairwise(points)):
        dec.feed(body[a:b], 100 * (i + 1))
    out = dec.finish(10_000, eof=True)
    assert out.error_class is None
    assert out.usage.output_tokens == 2
    assert out.events == len(SMALL)
    assert len(out.chunk_times) == 2


def test_one_byte_reads() -> None:
    body = b"".join(SMALL)
    dec = ConverseStreamDecoder()
    for i in range(len(body)):
        dec.feed(body[i : i + 1], i)
    out = dec.finish(len(body), eof=True)
    assert out.error_class is None
    ends = _ends(SMALL)
    assert out.chunk_times == (ends[1] - 1, ends[2] - 1)


# --- recorded ConverseStream bodies --------------------------------------------------------


def test_recorded_nova_stream_matches_its_sidecar() -> None:
    body = recorded("bedrock_converse_stream.bin")
    expected = recorded_json("bedrock_converse_stream.json")["expected"]
    dec = ConverseStreamDecoder()
    run(dec, split_messages(body))
    out = dec.finish(10**9, eof=True)
    assert out.error_class is None
    assert out.events == expected["n_messages"]
    assert len(out.chunk_times) == expected["n_text_deltas"]
    assert sum(dec._timeline.chars) == len(expected["full_text"])
    assert out.usage.input_tokens == expected["input_tokens"]
    assert out.usage.output_tokens == expected["output_tokens"]
    assert sum(out.chunk_tokens) == expected["output_tokens"]
    assert out.extra == {
        "stop_reason": expected["stop_reason"],
        "bedrock_latency_ms": str(expected["metrics"]["latencyMs"]),
    }
    assert out.t_first_token == out.t_first_visible == 200  # right after messageStart


def test_recorded_reasoning_stream_matches_its_sidecar() -> None:
    body = recorded("bedrock_converse_stream_reasoning.bin")
    expected = recorded_json("bedrock_converse_stream_reasoning.json")["expected"]
    dec = ConverseStreamDecoder()
    run(dec, split_messages(body))
    out = dec.finish(10**9, eof=True)
    assert out.error_class is None
    assert out.events == expected["n_messages"]
    assert len(out.chunk_times) == expected["n_text_deltas"] + expected["n_reasoning_deltas"]
    assert dec._timeline.reasoning_chars == expected["reasoning_text_len"]
    visible = sum(dec._timeline.chars) - dec._timeline.reasoning_chars
    assert visible == len(expected["full_text"])
    assert out.t_first_token is not None
    assert out.t_first_visible is not None
    assert out.t_first_token < out.t_first_visible
    assert out.usage.input_tokens == expected["input_tokens"]
    assert out.usage.output_tokens == expected["output_tokens"]
    assert out.extra["bedrock_latency_ms"] == str(expected["metrics"]["latencyMs"])


def test_recorded_stream_in_odd_sized_reads() -> None:
    body = recorded("bedrock_converse_stream.bin")
    dec = ConverseStreamDecoder()
    run(dec, [body[i : i + 37] for i in range(0, len(body), 37)])
    out = dec.finish(10**9, eof=True)
    assert out.error_class is None
    assert out.usage.output_tokens == 82


def test_recorded_exception_frame() -> None:
    expected = recorded_json("bedrock_eventstream_model_stream_error.json")["expected"]
    dec = ConverseStreamDecoder()
    dec.feed(recorded("bedrock_eventstream_model_stream_error.bin"), 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    payload = expected["payload"]
    assert out.error_message == (
        f"modelStreamErrorException: {payload['message']} "
        f"(model said: {payload['originalStatusCode']}, {payload['originalMessage']})"
    )


# --- InvokeModelWithResponseStream (Anthropic events in base64 chunks) ----------------------

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_bdrk_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 43,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 100,
            "output_tokens": 1,
        },
    },
}


def delta(kind: str, **fields: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, **fields}}


def message_delta(output_tokens: int, reason: str = "end_turn") -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


def anthropic_stop(metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "message_stop"}
    if metrics is not None:
        doc["amazon-bedrock-invocationMetrics"] = metrics
    return doc


METRICS = {
    "inputTokenCount": 150,
    "outputTokenCount": 30,
    "invocationLatency": 900,
    "firstByteLatency": 300,
}


def test_invoke_stream_with_thinking_text_and_metrics() -> None:
    dec = InvokeStreamDecoder()
    run(
        dec,
        [
            chunk(MESSAGE_START),
            chunk(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}
            ),
            chunk({"type": "ping"}),
            chunk(delta("thinking_delta", thinking="Let me see")),
            chunk(delta("thinking_delta", thinking="")),
            chunk(delta("signature_delta", signature="EvMC")),
            chunk({"type": "content_block_stop", "index": 0}),
            chunk(delta("text_delta", text="Hi")),
            chunk(delta("text_delta", text=" there")),
            chunk(delta("citations_delta")),
            chunk(message_delta(30)),
            chunk(anthropic_stop(METRICS)),
        ],
    )
    out = dec.finish(5000, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (400, 800, 900)
    assert out.t_first_token == 400
    assert out.t_first_visible == 800
    assert out.usage.input_tokens == 150  # 43 + 100 read + 7 written
    assert out.usage.cached_input_tokens == 100
    assert out.usage.cache_write_tokens == 7
    assert out.usage.output_tokens == 30
    assert sum(out.chunk_tokens) == 30
    assert out.token_source is TokenSource.USAGE
    assert out.events == 12
    assert out.extra == {
        "stop_reason": "end_turn",
        "bedrock_first_byte_latency_ms": "300",
        "bedrock_latency_ms": "900",
    }


def test_invoke_usage_from_invocation_metrics_when_anthropic_gives_none() -> None:
    dec = InvokeStreamDecoder()
    metrics = {**METRICS, "cacheReadInputTokenCount": 20, "cacheWriteInputTokenCount": 5}
    run(
        dec,
        [
            chunk({"type": "message_start", "message": {"id": "m"}}),
            chunk(delta("text_delta", text="Hello")),
            chunk({"type": "message_delta", "delta": "odd", "usage": None}),
            chunk(anthropic_stop(metrics)),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.usage.input_tokens == 175
    assert out.usage.cached_input_tokens == 20
    assert out.usage.cache_write_tokens == 5
    assert out.usage.output_tokens == 30
    assert "stop_reason" not in out.extra


def test_invoke_tool_input_and_cumulative_output() -> None:
    dec = InvokeStreamDecoder()
    run(
        dec,
        [
            chunk({"type": "message_start", "message": {"usage": {"input_tokens": 9}}}),
            chunk(delta("input_json_delta", partial_json='{"q":')),
            chunk(delta("input_json_delta", partial_json="")),
            chunk(delta("input_json_delta", partial_json='"x"}')),
            chunk({"type": "content_block_delta", "delta": "odd"}),
            chunk(message_delta(3, reason="tool_use")),
            chunk(message_delta(6, reason="tool_use")),
            chunk(anthropic_stop()),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (200, 400)
    assert out.t_first_visible == 200
    assert out.usage.input_tokens == 9
    assert out.usage.output_tokens == 6  # the last cumulative count
    assert out.extra == {"stop_reason": "tool_use"}


def test_invoke_odd_shapes_are_ignored() -> None:
    dec = InvokeStreamDecoder()
    metrics = {"invocationLatency": "slow", "firstByteLatency": 12}
    run(
        dec,
        [
            chunk({"type": "message_start", "message": "odd"}),
            chunk(delta("text_delta", text="Hi")),
            chunk(anthropic_stop(metrics)),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is None
    assert out.usage.input_tokens is None
    assert out.extra == {"bedrock_first_byte_latency_ms": "12"}
    assert out.token_source is TokenSource.ESTIMATED


def test_invoke_unparseable_chunk_payload() -> None:
    dec = InvokeStreamDecoder()
    run(dec, [frame([(":event-type", "chunk"), (":message-type", "event")], b"{oops")])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event payload")


def test_invoke_eof_before_message_stop() -> None:
    dec = InvokeStreamDecoder()
    run(dec, [chunk(MESSAGE_START), chunk(delta("text_delta", text="Hi"))])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended before message_stop"


def test_invoke_bad_chunks_are_stream_errors() -> None:
    dec = InvokeStreamDecoder()
    run(dec, [event("chunk", {"bytes": "!!not base64!!"}), chunk(anthropic_stop())])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "chunk event whose bytes are not base64"

    dec = InvokeStreamDecoder()
    run(dec, [event("chunk", {"bytes": base64.b64encode(b"{bad").decode()})])
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event payload")


@pytest.mark.parametrize(
    ("error", "error_class", "message"),
    [
        (
            {"type": "overloaded_error", "message": "Overloaded"},
            ErrorClass.OVERLOADED,
            "overloaded_error: Overloaded",
        ),
        (
            {"type": "api_error", "message": "boom"},
            ErrorClass.STREAM_ERROR,
            "api_error: boom",
        ),
        (None, ErrorClass.STREAM_ERROR, "error: error event in stream"),
    ],
)
def test_invoke_anthropic_error_event(
    error: dict[str, str] | None, error_class: ErrorClass, message: str
) -> None:
    dec = InvokeStreamDecoder()
    run(dec, [chunk(MESSAGE_START), chunk({"type": "error", "error": error})])
    out = dec.finish(900, eof=True)
    assert out.error_class is error_class
    assert out.error_message == message


def test_invoke_exception_frames_and_other_events() -> None:
    dec = InvokeStreamDecoder()
    run(
        dec,
        [
            event("someOtherEvent", {"x": 1}),
            chunk(delta("text_delta", text="Hi")),
            exception("modelTimeoutException", {"message": "Model timed out"}),
        ],
    )
    out = dec.finish(900, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "modelTimeoutException: Model timed out"

    dec = InvokeStreamDecoder()
    run(dec, [chunk(MESSAGE_START), exception("throttlingException", {"message": "slow"})])
    assert dec.finish(900, eof=True).error_class is ErrorClass.HTTP_429


def test_invoke_split_at_every_byte_boundary() -> None:
    parts = [
        chunk(MESSAGE_START),
        chunk(delta("text_delta", text="Hi")),
        chunk(message_delta(2)),
        chunk(anthropic_stop(METRICS)),
    ]
    body = b"".join(parts)
    text_end = _ends(parts)[1]
    for cut in range(len(body) + 1):
        dec = InvokeStreamDecoder()
        dec.feed(body[:cut], 100)
        dec.feed(body[cut:], 200)
        out = dec.finish(500, eof=True)
        assert out.error_class is None, cut
        assert out.chunk_times == ((100,) if text_end <= cut else (200,)), cut
        assert out.usage.output_tokens == 2
        assert out.extra["bedrock_first_byte_latency_ms"] == "300"
