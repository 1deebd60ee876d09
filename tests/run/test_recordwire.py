"""A worker's starts and records, encoded for the pipe to its parent (lens.run.recordwire)."""

from __future__ import annotations

import dataclasses
import pickle

from lens.records import EngineTimings, ErrorClass, RequestRecord, RequestStart, TokenSource
from lens.run import recordwire


def _every_field_set() -> RequestRecord:
    """A record whose every field differs from its default."""
    return RequestRecord(
        provider="mock",
        stage="r",
        prompt="p",
        index=7,
        ok=False,
        error_class=ErrorClass.HTTP_429,
        error_message="HTTP 429: slow down",
        http_status=429,
        t_intended=1,
        t_dispatch=2,
        t_headers=3,
        t_first_chunk=4,
        t_first_token=5,
        t_first_visible=6,
        t_last_token=8,
        t_end=9,
        chunk_times=(4, 6, 8),
        chunk_tokens=(1, 2, 1),
        input_tokens=10,
        output_tokens=4,
        cached_input_tokens=3,
        cache_write_tokens=2,
        reasoning_tokens=1,
        token_source=TokenSource.USAGE,
        reads=3,
        attempt=2,
        phase="cooldown",
        request_id="req-1",
        stale_connection=True,
        stale_lost_ns=11,
        extra={"retry-after": "1", "retry_after_s": "1"},
        session=3,
        turn=2,
        inputs=4,
        prefix_group=3,
        engine=EngineTimings(prompt_ms=1.5, prompt_tokens=10, cached_tokens=3, per_token_ms=2.0),
    )


def test_every_field_of_every_item_comes_back() -> None:
    record = _every_field_set()
    defaults = RequestRecord(**{f.name: getattr(record, f.name) for f in _required()})
    for field in dataclasses.fields(RequestRecord):  # the test's record sets them all
        if field not in _required():
            assert getattr(record, field.name) != getattr(defaults, field.name), field.name
    start = RequestStart("r", "mock", "p", 7, 2, "cooldown", None, 2)
    items: list[recordwire.Item] = [
        start,
        record,
        RequestStart("r", "mock", "p", 8, 1, "measure", 5, 6),
        defaults,
    ]
    # Through pickle, as the pipe sends it.
    back = recordwire.decode(pickle.loads(pickle.dumps(recordwire.encode(items))))
    assert back == items
    assert [type(x) for x in back] == [type(x) for x in items]
    got = back[1]
    assert isinstance(got, RequestRecord)
    assert got.error_class is ErrorClass.HTTP_429  # the enum members themselves
    assert got.token_source is TokenSource.USAGE


def test_an_empty_batch() -> None:
    assert recordwire.decode(recordwire.encode([])) == []


def _required() -> list[dataclasses.Field[object]]:
    return [
        f
        for f in dataclasses.fields(RequestRecord)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
