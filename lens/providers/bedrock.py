"""AWS Bedrock streaming: ConverseStream (default) or InvokeModelWithResponseStream.

Wire facts (wire-formats.md §6): ``POST {endpoint}/model/{modelId}/converse-stream`` (or
``/invoke-with-response-stream``), answered with a binary ``application/vnd.amazon.eventstream``
body (decoded in ``lens.providers.bedrock_stream``).  The endpoint is
``https://bedrock-runtime.{region}.{partition DNS suffix}`` unless ``base_url`` overrides it.

Auth is AWS SigV4 by botocore's own signer (service name ``bedrock``, not
``bedrock-runtime``), with credentials from the standard AWS chain (environment variables,
the shared credentials/config files and ``aws_profile``, SSO, container and instance roles)
resolved once when the adapter is built (so a missing credential stops the run before
anything is sent, and no credential refresh ever blocks the event loop mid-run); every
request is signed afresh, since the signature covers its body and its time (botocore reads
the wall clock for ``X-Amz-Date``).  Temporary credentials (SSO, assumed roles, instance
roles) are frozen as they were at build time: a run that outlives them gets HTTP 403s.
With an ``api_key`` (a Bedrock API key) requests carry ``Authorization: Bearer <key>``
instead, and no AWS credentials are needed.

The model id goes into the path percent-encoded with nothing safe (``:`` → ``%3A``, ``/`` of an
ARN → ``%2F``), as botocore sends it; SigV4's canonical URI encodes that path once more
(``%253A``).  The URL that is signed is the URL of the ``httpx.Request`` that is sent, and
the ``host`` that is signed is the one httpx puts on it, so the two cannot drift apart.

Signed headers: ``host``, ``x-amz-date``, ``content-type``, ``x-amz-security-token`` (temporary
credentials) and every header of ``spec.headers`` (e.g. ``X-Amzn-Bedrock-GuardrailIdentifier``);
``accept`` and ``accept-encoding`` are sent unsigned, as transport details.

Region check: botocore's endpoint data lists no regions for ``bedrock-runtime`` (the service
resolves endpoints through rules), so a region is accepted when it is a known region of an
AWS partition or matches a partition's region pattern (``^(us|eu|ap|…)-\\w+-\\d+$``, …): a
region newer than the installed botocore still works, while a typo such as ``us-east1`` or
``useast-1`` is refused before anything is sent.  The partition also gives the DNS suffix
(``amazonaws.com.cn`` for China).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from lens.errors import ProviderError
from lens.plan.model import BedrockSettings, Message, PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    COMMON_FACT_HEADERS,
    SYSTEM_ROLES,
    classify_status,
    error_text,
    header_facts,
    settings_of,
)
from lens.providers.bedrock_stream import ConverseStreamDecoder, InvokeStreamDecoder
from lens.records import ErrorClass

SIGNING_NAME = "bedrock"  # SigV4 service name (endpoint prefix is bedrock-runtime)
ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Anthropic requires max_tokens; sent in invoke mode when neither prompt nor stage sets one.
DEFAULT_INVOKE_MAX_TOKENS = 4096
_UNSIGNED = frozenset({"accept", "accept-encoding", "authorization"})
_FACT_HEADERS = (*COMMON_FACT_HEADERS, "x-amzn-errortype")
# Region in a Bedrock host name: bedrock-runtime[-fips].{region}.… (also VPC endpoints).
_HOST_REGION = re.compile(r"(?:^|\.)bedrock-runtime(?:-fips)?\.([a-z]+(?:-[a-z]+)+-\d+)\.")


@functools.cache
def _partitions() -> tuple[tuple[str, re.Pattern[str], frozenset[str], str], ...]:
    """(name, region pattern, known regions, DNS suffix) of every AWS partition botocore knows."""
    from botocore.loaders import create_loader  # noqa: PLC0415 (botocore is slow to import)

    out = []
    for part in create_loader().load_data("partitions")["partitions"]:
        regions = frozenset(r for r in part.get("regions", {}) if not r.endswith("-global"))
        suffix = part.get("outputs", {}).get("dnsSuffix", "amazonaws.com")
        out.append((part["id"], re.compile(part["regionRegex"]), regions, suffix))
    return tuple(out)


def partition_dns_suffix(region: str) -> str | None:
    """The DNS suffix of the partition ``region`` belongs to, or None if it is no AWS region."""
    parts = _partitions()
    for _, _, known, suffix in parts:
        if region in known:
            return suffix
    for _, pattern, _, suffix in parts:
        if pattern.match(region):
            return suffix
    return None


def is_anthropic_model(model: str) -> bool:
    """Foundation ids, inference profiles and ARNs that name an ``anthropic.`` model."""
    last = model.rsplit("/", 1)[-1].lower()
    return last.startswith("anthropic.") or ".anthropic." in last


class BedrockAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        where = f"provider {spec.id!r} (bedrock)"
        if not spec.model:
            raise ProviderError(f"{where}: no model id")
        settings = settings_of(spec, BedrockSettings)
        api_key = spec.api_key.reveal() if spec.api_key is not None else ""
        self._invoke = settings.api == "invoke"
        if self._invoke and not is_anthropic_model(spec.model):
            raise ProviderError(
                f"{where}: bedrock_api 'invoke' supports Anthropic models only "
                f"(an anthropic.* model id or inference profile), not {spec.model!r}; "
                f"use bedrock_api: converse for other model families"
            )
        region = settings.region
        if region is not None and partition_dns_suffix(region) is None:
            raise ProviderError(
                f"{where}: unknown AWS region {region!r} (expected a region such as us-east-1)"
            )
        if spec.base_url:
            endpoint = spec.base_url.rstrip("/")
            if region is None:
                found = _HOST_REGION.search(urlsplit(endpoint).hostname or "")
                region = found.group(1) if found else None
        elif region is None:
            raise ProviderError(
                f"{where}: no region: set region (e.g. us-east-1), or base_url for an endpoint"
            )
        else:
            endpoint = f"https://bedrock-runtime.{region}.{partition_dns_suffix(region)}"
        self.region = region
        operation = "invoke-with-response-stream" if self._invoke else "converse-stream"
        # Parsed once: httpx takes a URL object as is, and the string signed is its own.
        self._url = httpx.URL(f"{endpoint}/model/{quote(spec.model, safe='')}/{operation}")
        self._url_text = str(self._url)

        # identity: a compressed event stream would arrive in bursts (see openai_chat).
        headers = {
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream",
            "accept-encoding": "identity",
        }
        headers.update((name.lower(), value) for name, value in spec.headers)
        self._signer: Any = None
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        else:
            headers.pop("authorization", None)
            if region is None:
                shown = urlsplit(endpoint)
                raise ProviderError(
                    f"{where}: no region to sign requests for "
                    f"{shown.scheme}://{shown.hostname}{_port(shown.port)}: set region"
                )
            self._signer = _signer(where, settings.aws_profile, region)
        self._headers = headers
        self._signed = {k: v for k, v in headers.items() if k not in _UNSIGNED}

    @property
    def url(self) -> str:
        return self._url_text

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        limit = prompt.token_limit(max_tokens)
        body = self._invoke_body(prompt, limit) if self._invoke else _converse_body(prompt, limit)
        if prompt.body:  # before signing: the signature covers the body
            body = deep_merge(body, prompt.body)
        content = json.dumps(body, separators=(",", ":")).encode()
        request = httpx.Request("POST", self._url, headers=self._headers, content=content)
        if self._signer is not None:
            self._sign(request, content)
        return request

    def _sign(self, request: httpx.Request, content: bytes) -> None:
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        aws = AWSRequest(
            method=request.method,
            url=self._url_text,  # request.url is self._url: the URL sent is the URL signed
            data=content,
            headers={"host": request.headers["host"], **self._signed},
        )
        self._signer.add_auth(aws)  # reads the wall clock for X-Amz-Date
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            value = aws.headers.get(name)
            if value is not None:
                request.headers[name] = value

    def _invoke_body(self, prompt: PromptSpec, limit: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": limit if limit is not None else DEFAULT_INVOKE_MAX_TOKENS,
            "messages": [
                {"role": role, "content": [{"type": "text", "text": t} for t in texts]}
                for role, texts in _turns(prompt.messages)
            ],
        }
        system = [m.content for m in prompt.messages if m.role in SYSTEM_ROLES]
        if system:
            body["system"] = [{"type": "text", "text": t} for t in system]
        return body

    def new_decoder(self, prompt: PromptSpec) -> ConverseStreamDecoder | InvokeStreamDecoder:
        del prompt
        return InvokeStreamDecoder() if self._invoke else ConverseStreamDecoder()

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        return header_facts(headers, _FACT_HEADERS)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        kind = _error_type(headers, body)
        if status == 429:  # ThrottlingException, ModelNotReadyException
            error_class = ErrorClass.HTTP_429
        elif status == 503:  # ServiceUnavailableException
            error_class = ErrorClass.OVERLOADED
        elif status == 408:  # the model did not answer in time: the server's verdict, a 4xx
            error_class, kind = ErrorClass.HTTP_4XX, kind or "ModelTimeoutException"
        else:
            error_class = classify_status(status)
        name = f" {kind}" if kind else ""
        return error_class, f"HTTP {status}{name}: {_error_message(body)}"


def _signer(where: str, profile: str | None, region: str) -> Any:
    """A SigV4 signer holding credentials resolved once from the standard AWS chain."""
    import botocore.session  # noqa: PLC0415
    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.credentials import Credentials  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ProfileNotFound  # noqa: PLC0415

    session = botocore.session.Session(profile=profile)
    name = session.profile or "default"
    try:
        found = session.get_credentials()
    except ProfileNotFound:
        raise ProviderError(
            f"{where}: AWS profile {name!r} not found in ~/.aws/config or ~/.aws/credentials"
        ) from None
    except BotoCoreError as exc:
        raise ProviderError(
            f"{where}: could not resolve AWS credentials: {type(exc).__name__}: {exc}"
        ) from None
    frozen = found.get_frozen_credentials() if found is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise ProviderError(
            f"{where}: no AWS credentials: tried environment variables "
            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile {name!r} in ~/.aws/credentials "
            f"and ~/.aws/config, and instance/container roles (or set api_key to a Bedrock "
            f"API key)"
        )
    credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    return SigV4Auth(credentials, SIGNING_NAME, region)


def _port(port: int | None) -> str:
    return f":{port}" if port is not None else ""


def _turns(messages: tuple[Message, ...]) -> list[tuple[str, list[str]]]:
    """Non-system messages as alternating turns: consecutive ones of a role are merged.

    Both Converse and Anthropic reject two user (or assistant) messages in a row; one turn
    with several text blocks says the same thing.  Roles other than user/assistant/system
    are sent as user turns.
    """
    turns: list[tuple[str, list[str]]] = []
    for m in messages:
        if m.role in SYSTEM_ROLES:
            continue
        role = "assistant" if m.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].append(m.content)
        else:
            turns.append((role, [m.content]))
    return turns


def _converse_body(prompt: PromptSpec, limit: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [
            {"role": role, "content": [{"text": t} for t in texts]}
            for role, texts in _turns(prompt.messages)
        ]
    }
    system = [{"text": m.content} for m in prompt.messages if m.role in SYSTEM_ROLES]
    if system:
        body["system"] = system
    if limit is not None:
        body["inferenceConfig"] = {"maxTokens": limit}
    return body


def _error_type(headers: httpx.Headers, body: bytes) -> str:
    """The AWS error shape name: ``x-amzn-errortype`` (``Name:namespace``), else ``__type``."""
    raw = str(headers.get("x-amzn-errortype") or "")
    if not raw:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # too deep: unparseable too
            doc = None
        if isinstance(doc, dict):
            raw = str(doc.get("__type") or doc.get("code") or "")
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _error_message(body: bytes) -> str:
    """rest-json errors say ``{"message": …}``; some front ends say ``{"Message": …}``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # too deep: unparseable too
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str) and "message" not in doc:
        return str(doc["Message"])[:300]
    return error_text(body) or "(empty body)"
