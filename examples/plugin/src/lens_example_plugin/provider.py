"""Provider type ``ndjson-tokens``: a made-up protocol, newline-delimited JSON tokens.

Request: ``POST {base_url}{path}`` with ``{"model", "messages", "max_tokens"?,
"temperature"?}``.  Response (``application/x-ndjson``), one JSON object a line::

    {"t": "Hel"}
    {"t": "lo"}
    {"done": true, "usage": {"input": 12, "output": 2}}

or ``{"error": "message"}`` in band.  A stream that ends without ``done`` was cut.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field

from lens.plugins import (
    FROM_ENV,
    ErrorClass,
    PromptSpec,
    ProviderPlugin,
    ProviderSettings,
    ProviderSpec,
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    masked_request,
)


class NdjsonTokensSettings(ProviderSettings):
    """A server streaming newline-delimited JSON tokens (the lens example plugin)."""

    type: Literal["ndjson-tokens"] = Field(description="Provider kind.")
    path: Annotated[str, FROM_ENV] = Field(
        "/generate", pattern=r"^/", description="Request path under base_url, e.g. /generate."
    )
    temperature: float | None = Field(
        None, ge=0, le=2, description="Sampling temperature sent with each request (0-2)."
    )

    # Read when api_key is not written; a server of this protocol needs no key.
    api_key_variables = ("NDJSON_TOKENS_API_KEY",)


class NdjsonTokensAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        settings = spec.plugin_settings
        assert isinstance(settings, NdjsonTokensSettings)
        self.spec = spec
        self._url = (spec.base_url or "").rstrip("/") + settings.path
        self._temperature = settings.temperature
        headers = {
            "content-type": "application/json",
            "accept": "application/x-ndjson",
            "accept-encoding": "identity",  # lens stamps raw bytes as they arrive
        }
        headers.update(dict(spec.headers))
        if spec.api_key is not None and spec.api_key.reveal():
            headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
        self._headers = headers

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
        }
        limit = prompt.token_limit(max_tokens)
        if limit is not None:
            body["max_tokens"] = limit
        if self._temperature is not None:
            body["temperature"] = self._temperature
        return masked_request(self._url, self._headers, json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> NdjsonTokensDecoder:
        del prompt
        return NdjsonTokensDecoder()

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        return classify_status(status), f"HTTP {status}: {error_text(body)}"

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        return header_facts(headers)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class NdjsonTokensDecoder:
    """One response: lines split as bytes arrive, each token stamped with its read's time."""

    def __init__(self) -> None:
        self._buffer = b""
        self._timeline = TokenTimeline()
        self._usage = Usage()
        self._done = False
        self._error: str | None = None
        self._lines = 0

    def feed(self, data: bytes, t_ns: int) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._on_line(line, t_ns)

    def _on_line(self, line: bytes, t_ns: int) -> None:
        if not line.strip():
            return
        self._lines += 1
        try:
            obj = json.loads(line)
        except ValueError:
            self._error = self._error or f"unparseable line: {line[:120]!r}"
            return
        if not isinstance(obj, dict):
            return
        token = obj.get("t")
        if isinstance(token, str) and token:
            self._timeline.add(t_ns, len(token))
        if isinstance(obj.get("error"), str):
            self._error = self._error or obj["error"][:300]
        if obj.get("done") is True:
            self._done = True
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self._usage = Usage(
                    input_tokens=_int(usage.get("input")), output_tokens=_int(usage.get("output"))
                )

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        if eof and self._buffer:
            self._on_line(self._buffer, t_ns)  # a last line without its newline
            self._buffer = b""
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = ErrorClass.STREAM_ERROR, self._error
        elif not self._done:
            error_class = ErrorClass.CUT_STREAM
            message = "connection lost mid-stream" if not eof else "stream ended without done"
        return self._timeline.outcome(
            self._usage, error_class=error_class, error_message=message, events=self._lines
        )


PLUGIN = ProviderPlugin(settings_model=NdjsonTokensSettings, adapter_factory=NdjsonTokensAdapter)
