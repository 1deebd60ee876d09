"""Azure OpenAI Chat Completions streaming: the OpenAI Chat wire format on Azure URLs.

Wire facts (wire-formats.md §3): the stream is OpenAI Chat (``data: [DONE]`` last, usage in a
``choices: []`` chunk), except that the first chunk is ``prompt_filter_results`` with empty
``choices`` and an empty id/model (``OpenAIChatDecoder`` already ignores it), every choice
carries ``content_filter_results``, and a content-filter hit ends with
``finish_reason: "content_filter"`` (kept as ``stop_reason``; the request is still ok).

URLs: with ``api_version`` set, the classic
``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={v}``; without it,
the v1 API ``{endpoint}/openai/v1/chat/completions`` with ``model`` = the deployment name.
``base_url`` is the resource endpoint; a trailing ``/openai`` or ``/openai/v1`` is accepted.

Auth: exactly one of ``api-key: <key>`` (``auth: key``) or ``Authorization: Bearer <token>``
(``auth: entra``).  For Entra ID, ``api_key`` holds a ready access token (scope
``https://cognitiveservices.azure.com/.default``), e.g. ``${AZURE_OPENAI_AD_TOKEN}`` resolved
by the scenario layer; lens does not fetch or refresh tokens, so a run must fit in the
token's lifetime (about an hour).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import quote

import httpx

from lens.errors import ProviderError
from lens.plan.model import AzureSettings, PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    COMMON_FACT_HEADERS,
    StreamOutcome,
    classify_status,
    error_text,
    header_facts,
    masked_request,
    settings_of,
)
from lens.providers.openai_chat import OpenAIChatDecoder
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES
from lens.records import ErrorClass

# Azure adds its own request id (APIM) and the serving region to every response.
AZURE_FACT_HEADERS = (*COMMON_FACT_HEADERS, "apim-request-id", "x-ms-region")

_FINISH = b'"finish_reason"'
_FINISH_NULLS = (b'"finish_reason":null', b'"finish_reason": null')


def azure_endpoint(base_url: str) -> str:
    """The resource endpoint, without a trailing ``/``, ``/openai`` or ``/openai/v1``."""
    base = base_url.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


class AzureOpenAIAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        if spec.base_url is None:
            raise ProviderError(f"provider {spec.id!r} has no base_url (the Azure endpoint)")
        self.spec = spec
        self.settings = settings = settings_of(spec, AzureSettings)
        if settings.auth not in ("key", "entra"):
            raise ProviderError(f"provider {spec.id!r}: azure-openai auth must be key or entra")
        endpoint = azure_endpoint(spec.base_url)
        if settings.api_version is not None:
            if not settings.deployment:
                raise ProviderError(
                    f"provider {spec.id!r}: api_version selects the classic Azure URLs, "
                    "which need a deployment"
                )
            deployment = quote(settings.deployment, safe="")
            self._url = httpx.URL(
                f"{endpoint}/openai/deployments/{deployment}/chat/completions",
                params={"api-version": settings.api_version},
            )
            self._model = spec.model  # ignored by Azure: the deployment picks the model
        else:
            self._url = httpx.URL(f"{endpoint}/openai/v1/chat/completions")
            self._model = settings.deployment or spec.model
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",  # lens stamps raw bytes as they arrive
        }
        headers.update((k.lower(), v) for k, v in spec.headers)
        if spec.api_key is not None and spec.api_key.reveal():
            # Exactly one credential header, whatever the extra headers say.
            if settings.auth == "entra":
                headers.pop("api-key", None)
                headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
            else:
                headers.pop("authorization", None)
                headers["api-key"] = spec.api_key.reveal()
        self._headers = headers

    def __repr__(self) -> str:
        return f"AzureOpenAIAdapter(provider={self.spec.id!r}, url={str(self._url)!r})"

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "stream": True,
        }
        if self.settings.include_usage:
            body["stream_options"] = {"include_usage": True}
        limit = prompt.token_limit(max_tokens)
        if limit is not None:
            body[self.settings.max_tokens_field] = limit
        if prompt.body:
            body = deep_merge(body, prompt.body)
        return masked_request(self._url, self._headers, json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> AzureChatDecoder:
        del prompt
        return AzureChatDecoder(self.spec.limits.max_event_bytes)

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        # retry-after, retry-after-ms, x-ratelimit-remaining-*, x-request-id, apim-request-id
        return header_facts(headers, AZURE_FACT_HEADERS)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        return classify_status(status), f"HTTP {status}: {error_text(body)}"


class AzureChatDecoder(OpenAIChatDecoder):
    """``OpenAIChatDecoder`` that also keeps the finish reason (``content_filter`` matters)."""

    __slots__ = ("_stop_reason",)

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        self._stop_reason: str | None = None

    def _on_event(self, data: bytes, event: bytes, t_ns: int) -> None:
        # Every chunk says "finish_reason":null; only the rare one that does not is parsed
        # here (twice: the base class parses it again, once per stream).
        if _FINISH in data and data.count(_FINISH) != sum(map(data.count, _FINISH_NULLS)):
            self._take_finish(data)
        super()._on_event(data, event, t_ns)

    def _take_finish(self, data: bytes) -> None:
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):  # too deep: unparseable too
            return  # the base class reports it
        for choice in (obj.get("choices") or ()) if isinstance(obj, dict) else ():
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            if isinstance(reason, str) and reason:
                self._stop_reason = reason

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        out = super().finish(t_ns, eof=eof)
        if self._stop_reason is None:
            return out
        return dataclasses.replace(out, extra={**out.extra, "stop_reason": self._stop_reason})
