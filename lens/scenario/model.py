"""The scenario file, version 1, as frozen pydantic models: the user contract in code.

Field names are exactly the YAML keys.  Every model forbids unknown keys (typos must fail
loudly) and is frozen.  Durations, rates and percentages are parsed into seconds, per-second
rates and fractions here, so nothing downstream sees unit strings.  The JSON Schema in
``schemas/scenario-v1.json`` is generated from these classes: descriptions written here are
what editors show.

Checks that need to look at several items at once (unique ids) live in ``checks.py`` because
they report the positions of two nodes; references between sections (a stage naming a
provider) are resolved by ``lens.plan.compile``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    Tag,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from lens.entry_points import PluginError, provider_plugin_origin, provider_plugins
from lens.netconfig import ProxyURLError, parse_proxy_url
from lens.scenario.env_scope import FROM_ENV
from lens.scenario.headers import credential_problem, header_name_problem, unsendable
from lens.scenario.sla import SlaSyntaxError, parse_sla
from lens.scenario.units import (
    Precision,
    duration_json_schema,
    parse_duration,
    parse_percent,
    parse_precision,
    parse_rate,
    parse_size,
    parse_span,
    parse_usd,
    percent_json_schema,
    precision_json_schema,
    rate_json_schema,
    show,
    size_json_schema,
    span_json_schema,
    usd_json_schema,
)
from lens.scenario.yaml_nodes import SourceMap
from lens.targets import EXPORT_KINDS, TargetError, known_kinds, parse_target

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
# A schedule is materialised as one float per request; past this a typo ("rate: 5000/s" for an
# hour) would eat gigabytes before anything is sent.
MAX_REQUESTS_PER_STAGE = 1_000_000

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
URL_PATTERN = r"^https?://[^\s/]+\S*$"
# The shape of an AWS region name (us-east-1, us-gov-west-1, us-isob-east-1); whether the
# region exists and offers Bedrock is left to the provider adapter.
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$"
# Friendly wording for pattern mismatches, keyed by pattern (see messages.py).
PATTERN_HINTS: dict[str, str] = {
    ID_PATTERN: "expected an id made of letters, digits, '_', '-' and '.' (no spaces, no '#')",
    URL_PATTERN: "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1",
    REGION_PATTERN: "expected an AWS region name such as us-east-1 or eu-west-3",
}


class FieldError(ValueError):
    """A check of a whole model that one of its keys is to blame for: reported at that key
    (``messages.explain``) rather than at the start of the model's mapping."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def _positive_duration(value: object) -> float:
    return parse_duration(value, positive=True)


# Seconds.  ``Duration`` may be zero (a simulated delay), ``PositiveDuration`` may not.
Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(duration_json_schema(positive=False))
]
PositiveDuration = Annotated[
    float, BeforeValidator(_positive_duration), WithJsonSchema(duration_json_schema(positive=True))
]
Rate = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema(rate_json_schema())]


def _rate_or_zero(value: object) -> float:
    return parse_rate(value, allow_zero=True)


# Per second, zero allowed: where a ramp starts or ends.
RateOrZero = Annotated[
    float, BeforeValidator(_rate_or_zero), WithJsonSchema(rate_json_schema(allow_zero=True))
]
Percent = Annotated[float, BeforeValidator(parse_percent), WithJsonSchema(percent_json_schema())]


@dataclass(frozen=True, slots=True)
class Span:
    """How long a warmup or cooldown lasts: seconds, or a number of requests."""

    seconds: float | None = None
    requests: int | None = None

    def __str__(self) -> str:
        if self.requests is not None:
            return f"{self.requests} request{'s' if self.requests != 1 else ''}"
        return f"{self.seconds:g}s"


def _span(value: object) -> Span:
    if isinstance(value, Span):
        return value
    seconds, requests = parse_span(value)
    return Span(seconds, requests)


# ``10s`` or ``5 requests``.
PhaseSpan = Annotated[Span, BeforeValidator(_span), WithJsonSchema(span_json_schema())]
DrainPolicy = Literal["wait", "cancel"]
# Strict: YAML already types numbers, so "8" (quoted) or true must not sneak in as an int.
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Url = Annotated[str, Field(pattern=URL_PATTERN)]
EnvUrl = Annotated[str, Field(pattern=URL_PATTERN), FROM_ENV]
Region = Annotated[str, Field(pattern=REGION_PATTERN), FROM_ENV]


class FrozenModel(BaseModel):
    """Base of every scenario model: immutable, and unknown keys are errors (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- configuration that reaches the wire -----------------------------------------------------
# ``FROM_ENV`` marks the fields where ``${VAR}`` is expanded (see env_scope.py); elsewhere it
# is literal text.  Values that go into HTTP headers are checked here, after expansion.


def _credential(value: SecretStr) -> SecretStr:
    problem = credential_problem("api_key", value.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return value


def _header_name(name: str) -> str:
    problem = header_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _header_text(value: str) -> str:
    why = unsendable(value)
    if why is not None:
        raise ValueError(f"the header value {why}")
    return value


# A credential: its value is never echoed in messages, plans or results.
ApiKey = Annotated[Annotated[SecretStr, AfterValidator(_credential)] | None, FROM_ENV]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderText = Annotated[str, AfterValidator(_header_text)]
EnvNonEmptyStr = Annotated[str, Field(min_length=1), FROM_ENV]
EnvHeaderText = Annotated[HeaderText, Field(min_length=1), FROM_ENV]


class SecretHeader(FrozenModel):
    """A header written as a mapping, to mark its value secret."""

    value: HeaderText = Field(description="The header's value, usually ${VAR}.")
    secret: bool = Field(
        False,
        strict=True,
        description="The value is a secret: masked in plans and replaced by *** wherever lens "
        "records or prints it.",
    )


def _header_kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict | SecretHeader) else "text"


HeaderValue = Annotated[
    Annotated[HeaderText, Tag("text")] | Annotated[SecretHeader, Tag("mapping")],
    Discriminator(_header_kind),
]
Headers = Annotated[dict[HeaderName, HeaderValue], FROM_ENV]


# --- defaults ------------------------------------------------------------------------------


RetryableClass = Literal[
    "http_429",
    "overloaded",
    "http_5xx",
    "timeout",
    "connect",
    "connection_lost",
    "stream_error",
    "cut_stream",
]


class Retries(FrozenModel):
    """Retries are off unless asked for; when on, every attempt is its own record."""

    max: Annotated[int, Field(strict=True, ge=0, le=10)] = Field(
        0, description="Extra attempts after a failure of a class in `on` (default 0: none)."
    )
    on: tuple[RetryableClass, ...] = Field(
        ("http_429", "overloaded"), min_length=1, description="Error classes worth a retry."
    )
    backoff: Duration = Field(
        1.0,
        description="Wait before retry k when the server gave no retry-after: backoff * 2^(k-1).",
    )
    max_wait: PositiveDuration = Field(
        30.0, description="Cap on any wait, including a server's retry-after."
    )


_WARMUP_DESCRIPTION = (
    "The first seconds (10s) or arrivals (5 requests) of each stage: sent and measured as "
    "usual, summarised apart and left out of SLA verdicts (default: none)."
)
_COOLDOWN_DESCRIPTION = (
    "The last seconds (10s) or arrivals (5 requests) of each stage, treated like warmup."
)
_DRAIN_DESCRIPTION = (
    "What happens to requests in flight when the stage ends: wait (let them finish) or cancel "
    "(cut them off, recorded as drained)."
)
_DRAIN_TIMEOUT_DESCRIPTION = (
    "How long requests in flight may run on after the stage ends before they are cut off "
    "(drained): a cap for drain: wait, a grace for drain: cancel."
)
_SLA_INCLUDES_WARMUP_DESCRIPTION = (
    "Judge SLAs on warmup and cooldown requests too, pooled into the main summary."
)


class Defaults(FrozenModel):
    """Values every stage inherits unless it sets its own."""

    retries: Retries | None = Field(None, description="Retry policy (default: no retries).")

    timeout: PositiveDuration = Field(
        60.0, description="Per-request timeout, e.g. 30s (default 60s)."
    )
    max_tokens: PositiveInt | None = Field(
        None, description="Output token limit sent with each request (default: the server's)."
    )
    warmup: PhaseSpan | None = Field(None, description=_WARMUP_DESCRIPTION)
    cooldown: PhaseSpan | None = Field(None, description=_COOLDOWN_DESCRIPTION)
    drain: DrainPolicy = Field("wait", description=_DRAIN_DESCRIPTION)
    drain_timeout: PositiveDuration | None = Field(None, description=_DRAIN_TIMEOUT_DESCRIPTION)
    sla_includes_warmup: bool = Field(
        False, strict=True, description=_SLA_INCLUDES_WARMUP_DESCRIPTION
    )
    pacing: Literal["standard", "precise"] = Field(
        "standard",
        description="Open-loop dispatch: standard (the event loop's timers, up to ~1 ms late) "
        "or precise (the last millisecond before each arrival is spun through: sub-ms "
        "dispatch lag for up to a millisecond of CPU per request).",
    )


# --- prices --------------------------------------------------------------------------------

Usd = Annotated[Decimal, BeforeValidator(parse_usd), WithJsonSchema(usd_json_schema())]


class TokenPrice(FrozenModel):
    """Prices in USD per 1M tokens, billed the way lens's catalog bills them."""

    input: Usd = Field(description="USD per 1M uncached input tokens, e.g. 0.15.")
    output: Usd = Field(description="USD per 1M output tokens (reasoning included).")
    cached_input: Usd | None = Field(
        None, description="USD per 1M cache-read input tokens (default: the input rate)."
    )
    cache_write: Usd | None = Field(
        None, description="USD per 1M cache-write tokens (default: the input rate)."
    )
    reasoning: Usd | None = Field(
        None, description="USD per 1M reasoning tokens (default: billed as output)."
    )


class GpuHourPrice(FrozenModel):
    """A self-hosted deployment billed by the hour whether busy or idle."""

    gpu_hour: Usd = Field(description="USD per GPU per hour, e.g. 2.50.")
    gpus: PositiveInt = Field(1, description="GPUs the deployment occupies.")


def _price_kind(value: Any) -> str:
    return "gpu" if isinstance(value, dict) and "gpu_hour" in value else "tokens"


Price = Annotated[
    Annotated[TokenPrice, Tag("tokens")] | Annotated[GpuHourPrice, Tag("gpu")],
    Discriminator(_price_kind),
]


class _Priced(FrozenModel):
    price: Annotated[Price | None, FROM_ENV] = Field(
        None,
        description="What this provider costs, overriding the pricing catalog: USD per 1M "
        "tokens ({input, output, ...}) or per GPU-hour ({gpu_hour, gpus}).",
    )


class PricingEntry(TokenPrice):
    """A negotiated or private price for a provider type and model, replacing the catalog's."""

    provider: NonEmptyStr = Field(
        description="Provider type whose catalog this entry joins, e.g. openai or bedrock."
    )
    model: NonEmptyStr = Field(description="Model name as providers name it.")


# --- network settings of providers ------------------------------------------------------


class TlsSettings(FrozenModel):
    """How a provider's https connections are verified, and the client certificate."""

    ca_bundle: NonEmptyStr | None = Field(
        None,
        description="PEM file of the CA certificates to trust, instead of the default "
        "(certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set); relative to the "
        "scenario's folder.",
    )
    client_cert: NonEmptyStr | None = Field(
        None,
        description="PEM file of the client certificate to present (with its key, unless "
        "client_key is given); relative to the scenario's folder.",
    )
    client_key: NonEmptyStr | None = Field(
        None, description="PEM file of client_cert's private key, when it is a file of its own."
    )
    verify: bool = Field(
        True,
        strict=True,
        description="false: accept any certificate and host name (a warning on every run).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.client_key is not None and self.client_cert is None:
            raise FieldError(
                "client_key needs client_cert: the certificate that key belongs to", "client_key"
            )
        if not self.verify and self.ca_bundle is not None:
            raise FieldError(
                "ca_bundle is never used with verify: false (nothing is verified): drop one",
                "verify",
            )
        return self


def _proxy_setting(value: object) -> object:
    """``proxy:``: an HTTP proxy URL, or ``none`` / false for a direct connection."""
    if value is False:
        return "none"
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return "none"
        try:
            parse_proxy_url(value)
        except ProxyURLError as exc:
            raise ValueError(str(exc)) from None
        return value
    raise ValueError(
        "expected an HTTP proxy URL such as http://proxy.example:3128, or none for a direct "
        "connection"
    )


# Stored as a secret: the URL's user-info may hold the proxy's password.
ProxySetting = Annotated[
    SecretStr,
    BeforeValidator(_proxy_setting),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"const": False}],
            "description": "HTTP proxy URL (http://[user:password@]host:port), or none / "
            "false to connect directly (default: HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / "
            "NO_PROXY). SOCKS is not supported.",
        }
    ),
]


class _KeepAlive(FrozenModel):
    keep_alive: bool = Field(
        True,
        strict=True,
        description="false: a fresh connection for every request, sent with Connection: "
        "close (connect time stays out of TTFT).",
    )


class _Network(_KeepAlive):
    """Connection settings of every provider that reaches a server over the network."""

    proxy: Annotated[ProxySetting | None, FROM_ENV] = Field(
        None,
        description="HTTP proxy URL for this provider, or none to connect directly; when "
        "omitted, the HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY variables.",
    )
    tls: Annotated[TlsSettings | None, FROM_ENV] = Field(
        None,
        description="TLS verification and client certificate (default: verify against "
        "certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set).",
    )


# --- providers -----------------------------------------------------------------------------


class SimErrors(FrozenModel):
    """Injected failures of the simulated server, as fractions of requests."""

    rate_429: Percent = Field(0.0, description="Share answered with HTTP 429, e.g. 1%.")
    rate_500: Percent = Field(0.0, description="Share answered with HTTP 500, e.g. 0.5%.")
    cut_stream: Percent = Field(0.0, description="Share whose stream is cut midway, e.g. 1%.")

    @model_validator(mode="after")
    def _at_most_one(self) -> SimErrors:
        if self.rate_429 + self.rate_500 + self.cut_stream > 1 + 1e-12:
            raise ValueError("the error rates add up to more than 100%")
        return self


# Wire protocols the simulated server can speak; lens.plan.model.SimProtocol must match.
SimProtocolName = Literal[
    "openai", "openai-responses", "anthropic", "gemini", "bedrock", "azure-openai"
]


class SimulatedProvider(_Priced, _KeepAlive):
    """lens's own loopback server with a scripted latency profile: no network, no cost."""

    type: Literal["simulated"] = Field(description="Provider kind.")
    protocol: SimProtocolName = Field(
        "openai",
        description="Wire protocol the server speaks: openai (Chat Completions), "
        "openai-responses, anthropic, gemini, bedrock or azure-openai.",
    )
    model: EnvNonEmptyStr = Field("lens-sim", description="Model name the simulator reports.")
    ttft: Duration = Field(0.15, description="Time to first token, e.g. 150ms.")
    itl: Duration = Field(0.015, description="Gap between output tokens, e.g. 15ms.")
    output_tokens: PositiveInt = Field(64, description="Tokens generated per response.")
    jitter: float = Field(
        0.0, ge=0, strict=True, description="Relative standard deviation of each delay, e.g. 0.1."
    )
    errors: SimErrors = Field(
        default=SimErrors.model_validate({}), description="Failures to inject, as percentages."
    )
    seed: int = Field(0, strict=True, description="Seed for jitter and error injection.")
    capacity: PositiveInt | None = Field(
        None,
        description="Responses generated at once, e.g. 4; later requests wait in a FIFO "
        "queue and their TTFT grows by the wait, as on a real inference server (default: no "
        "limit).",
    )


_HEADERS_DESCRIPTION = (
    "Extra HTTP headers sent with every request: 'Name: value', or 'Name: {value: ${VAR}, "
    "secret: true}' to mask the value in plans and redact it from every output."
)
_MAX_TOKENS_FIELD_DESCRIPTION = "Request field carrying the output token limit."
_INCLUDE_USAGE_DESCRIPTION = "Ask for token usage in the stream (stream_options.include_usage)."
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


def _headers() -> Any:
    return Field(default_factory=dict, description=_HEADERS_DESCRIPTION)


class OpenAICompatibleProvider(_Priced, _Network):
    """Any server speaking OpenAI Chat Completions: vLLM, TGI, SGLang, llama.cpp, Ollama."""

    type: Literal["openai-compatible"] = Field(description="Provider kind.")
    base_url: EnvUrl = Field(
        description="API root including the version, e.g. http://127.0.0.1:8000/v1."
    )
    model: EnvNonEmptyStr = Field(description="Model name sent in each request.")
    api_key: ApiKey = Field(
        None, description="Bearer token, usually ${VAR}; empty means none is sent."
    )
    headers: Headers = _headers()
    max_tokens_field: MaxTokensField = Field(
        "max_tokens", description=_MAX_TOKENS_FIELD_DESCRIPTION
    )
    include_usage: bool = Field(True, strict=True, description=_INCLUDE_USAGE_DESCRIPTION)


class OpenAIProvider(_Priced, _Network):
    """The OpenAI API itself (Chat Completions)."""

    type: Literal["openai"] = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(description="Model name, e.g. gpt-4o-mini.")
    base_url: EnvUrl = Field(
        "https://api.openai.com/v1", description="API root (change it for a proxy)."
    )
    api_key: ApiKey = Field(
        None, description="API key; when omitted, the OPENAI_API_KEY environment variable."
    )
    headers: Headers = _headers()
    # OpenAI deprecated max_tokens for chat; reasoning models reject it.
    max_tokens_field: MaxTokensField = Field(
        "max_completion_tokens", description=_MAX_TOKENS_FIELD_DESCRIPTION
    )
    include_usage: bool = Field(True, strict=True, description=_INCLUDE_USAGE_DESCRIPTION)


class OpenAIResponsesProvider(_Priced, _Network):
    """The OpenAI Responses API (POST {base_url}/responses); usage always comes at the end."""

    type: Literal["openai-responses"] = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(description="Model name, e.g. gpt-5-mini.")
    base_url: EnvUrl = Field(
        "https://api.openai.com/v1",
        description="API root including the version; lens appends /responses.",
    )
    api_key: ApiKey = Field(
        None, description="API key; when omitted, the OPENAI_API_KEY environment variable."
    )
    headers: Headers = _headers()


class AnthropicProvider(_Priced, _Network):
    """Anthropic's Messages API (Claude)."""

    type: Literal["anthropic"] = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(description="Model name, e.g. claude-sonnet-4-20250514.")
    base_url: EnvUrl = Field(
        "https://api.anthropic.com",
        description="API root without the version; lens appends /v1/messages.",
    )
    api_key: ApiKey = Field(
        None,
        description="API key (x-api-key header); when omitted, the ANTHROPIC_API_KEY "
        "environment variable.",
    )
    headers: Headers = _headers()
    anthropic_version: EnvHeaderText = Field(
        "2023-06-01", description="Value of the anthropic-version header."
    )


class GeminiProvider(_Priced, _Network):
    """Google's Gemini API (streamGenerateContent over SSE)."""

    type: Literal["gemini"] = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(description="Model name, e.g. gemini-2.5-flash.")
    base_url: EnvUrl = Field(
        "https://generativelanguage.googleapis.com",
        description="API root without the version; lens appends "
        "/v1beta/models/{model}:streamGenerateContent.",
    )
    api_key: ApiKey = Field(
        None,
        description="API key (x-goog-api-key header); when omitted, the GEMINI_API_KEY "
        "environment variable, then GOOGLE_API_KEY.",
    )
    headers: Headers = _headers()


def _given(*keys: str) -> dict[str, Any]:
    """JSON Schema: each of ``keys`` is present and not null."""
    return {"required": list(keys), "properties": {k: {"type": "string"} for k in keys}}


# The schema says what the validators below check, so editors flag it too.
_NOT_BOTH_URLS: dict[str, Any] = {"not": _given("base_url", "endpoint")}
_ONE_URL: dict[str, Any] = {**_NOT_BOTH_URLS, "anyOf": [_given("endpoint"), _given("base_url")]}


def _one_url(base_url: str | None, endpoint: str | None) -> None:
    if base_url is not None and endpoint is not None:
        raise FieldError(
            "give either 'endpoint' or 'base_url', not both: they are two names of one setting",
            "endpoint",
        )


class BedrockProvider(_Priced, _Network):
    """Amazon Bedrock runtime: ConverseStream, or InvokeModelWithResponseStream."""

    model_config = ConfigDict(json_schema_extra=_NOT_BOTH_URLS)

    type: Literal["bedrock"] = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(
        description="Model id, inference profile or ARN, e.g. us.amazon.nova-micro-v1:0."
    )
    region: Region | None = Field(
        None,
        description="AWS region, e.g. us-east-1; when omitted, AWS_REGION, then "
        "AWS_DEFAULT_REGION. Needed unless endpoint is given.",
    )
    profile: EnvNonEmptyStr | None = Field(
        None, description="Named profile of the AWS credential chain (default: the chain's)."
    )
    api: Literal["converse", "invoke"] = Field(
        "converse",
        description="converse (ConverseStream) or invoke (InvokeModelWithResponseStream, "
        "model-native body).",
    )
    base_url: EnvUrl | None = Field(
        None,
        description="Runtime endpoint, e.g. a VPC endpoint (default: the region's "
        "bedrock-runtime endpoint). Same as endpoint.",
    )
    endpoint: EnvUrl | None = Field(None, description="Same as base_url.")
    headers: Headers = _headers()
    api_key: ApiKey = Field(
        None,
        description="Bedrock API key, sent as a bearer token instead of SigV4 signing; when "
        "omitted, AWS_BEARER_TOKEN_BEDROCK if set; empty means none.",
    )

    @model_validator(mode="after")
    def _one_url(self) -> BedrockProvider:
        _one_url(self.base_url, self.endpoint)
        return self

    @property
    def url(self) -> str | None:
        """``endpoint`` or ``base_url``, whichever was given."""
        return self.endpoint if self.endpoint is not None else self.base_url


class AzureOpenAIProvider(_Priced, _Network):
    """Azure OpenAI chat completions: the v1 API, or the classic one with api_version."""

    model_config = ConfigDict(json_schema_extra=_ONE_URL)

    type: Literal["azure-openai"] = Field(description="Provider kind.")
    deployment: EnvNonEmptyStr = Field(description="Deployment name; it selects the model.")
    endpoint: EnvUrl | None = Field(
        None,
        description="Resource endpoint, e.g. https://myres.openai.azure.com; lens appends "
        "/openai/... (required, or base_url).",
    )
    base_url: EnvUrl | None = Field(None, description="Same as endpoint.")
    api_version: EnvNonEmptyStr | None = Field(
        None,
        description="Classic API version, e.g. 2024-10-21: /openai/deployments/{deployment}/"
        "...?api-version=; when omitted, the v1 API (/openai/v1/...).",
    )
    auth: Literal["key", "entra"] = Field(
        "key",
        description="key: api-key header; entra: Authorization: Bearer with a Microsoft "
        "Entra ID token.",
    )
    api_key: ApiKey = Field(
        None,
        description="API key (auth: key; default AZURE_OPENAI_API_KEY) or Entra ID token "
        "(auth: entra; default AZURE_OPENAI_AD_TOKEN).",
    )
    headers: Headers = _headers()
    max_tokens_field: MaxTokensField = Field(
        "max_completion_tokens", description=_MAX_TOKENS_FIELD_DESCRIPTION
    )
    include_usage: bool = Field(True, strict=True, description=_INCLUDE_USAGE_DESCRIPTION)
    model: EnvNonEmptyStr | None = Field(
        None, description="Model name for results (default: the deployment, which picks it)."
    )

    @model_validator(mode="after")
    def _url(self) -> AzureOpenAIProvider:
        _one_url(self.base_url, self.endpoint)
        if self.url is None:
            raise FieldError(
                "missing required field 'endpoint' (the resource URL, e.g. "
                "https://myres.openai.azure.com; base_url is another name for it)",
                "endpoint",
            )
        return self

    @property
    def url(self) -> str | None:
        """``endpoint`` or ``base_url``, whichever was given (the validator requires one)."""
        return self.endpoint if self.endpoint is not None else self.base_url


class PluginProviderSettings(_Priced, _Network):
    """Base of a provider plugin's settings (``lens.plugins.ProviderSettings``): the fields
    every network provider has; a plugin subclasses it with ``type: Literal["its-type"]``
    and its own fields, and lens validates, documents (JSON Schema) and positions errors
    for them like for a built-in type."""

    type: str = Field(description="Provider kind.")
    model: EnvNonEmptyStr = Field(description="Model name sent in each request.")
    base_url: EnvUrl = Field(description="API root, e.g. http://127.0.0.1:8000/v1.")
    api_key: ApiKey = Field(None, description="Credential, usually ${VAR}; empty: none is sent.")
    headers: Headers = _headers()

    # Variables lens reads the credential from when api_key is not written (first non-empty
    # wins), and whether a provider of this type without one is an error.
    api_key_variables: ClassVar[tuple[str, ...]] = ()
    api_key_required: ClassVar[bool] = False


Provider = Annotated[
    SimulatedProvider
    | OpenAICompatibleProvider
    | OpenAIProvider
    | OpenAIResponsesProvider
    | AnthropicProvider
    | GeminiProvider
    | BedrockProvider
    | AzureOpenAIProvider,
    Field(discriminator="type"),
]
# For code that takes any provider the loader may return: built-in or a plugin's.
AnyProvider = Provider | PluginProviderSettings
HostedProvider = (
    PluginProviderSettings
    | OpenAICompatibleProvider
    | OpenAIProvider
    | OpenAIResponsesProvider
    | AnthropicProvider
    | GeminiProvider
    | BedrockProvider
    | AzureOpenAIProvider
)
PROVIDER_TYPES: tuple[str, ...] = (
    "anthropic",
    "azure-openai",
    "bedrock",
    "gemini",
    "openai",
    "openai-compatible",
    "openai-responses",
    "simulated",
)
# Names people reach for that difflib cannot match to a type (see messages.explain).
PROVIDER_TYPE_ALIASES: dict[str, str] = {
    "azure": "azure-openai",
    "claude": "anthropic",
    "google": "gemini",
    "aws": "bedrock",
    "amazon": "bedrock",
    "vllm": "openai-compatible",
    "ollama": "openai-compatible",
}

# --- prompts -------------------------------------------------------------------------------


class ChatMessage(FrozenModel):
    role: Literal["system", "developer", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="The message text.")


MAX_WEIGHT = 1000  # the compiled cycle is as long as the sum of the weights


def _weight() -> Any:
    return Field(
        1,
        strict=True,
        gt=0,
        le=MAX_WEIGHT,
        description="Relative share of requests (smooth weighted round-robin), 1 to 1000.",
    )


def _prompt_id() -> Any:
    return Field(description="Unique prompt id, referenced by stages.")


class MessagesPrompt(FrozenModel):
    """A chat request written inline."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    messages: tuple[ChatMessage, ...] = Field(min_length=1, description="The chat messages.")
    max_tokens: PositiveInt | None = Field(
        None, description="Output token limit for this prompt (overrides the stage's)."
    )


class SyntheticSpec(FrozenModel):
    input_tokens: PositiveInt = Field(description="Approximate prompt length in tokens.")
    output_tokens: PositiveInt = Field(description="max_tokens sent with the request.")
    seed: int = Field(0, strict=True, description="Seed of the generated text.")


class SyntheticPrompt(FrozenModel):
    """Generated text of a given length: deterministic for a seed."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    synthetic: SyntheticSpec = Field(description="Length and seed of the generated prompt.")


@dataclass(frozen=True, slots=True)
class FileRequest:
    """One line of a prompts JSONL file (line is 1-based)."""

    line: int
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None


class FilePrompt(FrozenModel):
    """A JSONL file of chat requests, one per line: {"messages": [...], "max_tokens": 50}."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    file: NonEmptyStr = Field(description="Path of the JSONL file, relative to the scenario.")
    # Filled by the loader, which reads the file; not part of the YAML contract.
    _requests: tuple[FileRequest, ...] = PrivateAttr(default=())

    @property
    def requests(self) -> tuple[FileRequest, ...]:
        return self._requests


PROMPT_KINDS: tuple[str, ...] = ("messages", "synthetic", "file")
_KIND_OF_CLASS: dict[type[BaseModel], str] = {
    MessagesPrompt: "messages",
    SyntheticPrompt: "synthetic",
    FilePrompt: "file",
}


def _prompt_kind(value: Any) -> str | None:
    """The tag of a prompt: the one of messages/synthetic/file it has (None: not exactly one)."""
    if isinstance(value, dict):
        kinds = [k for k in PROMPT_KINDS if k in value]
        return kinds[0] if len(kinds) == 1 else None
    return _KIND_OF_CLASS.get(type(value))


Prompt = Annotated[
    Annotated[MessagesPrompt, Tag("messages")]
    | Annotated[SyntheticPrompt, Tag("synthetic")]
    | Annotated[FilePrompt, Tag("file")],
    Discriminator(
        _prompt_kind,
        custom_error_type="prompt_kind",
        custom_error_message="a prompt needs exactly one of 'messages', 'synthetic' or 'file'",
    ),
]

# --- load stages ---------------------------------------------------------------------------


class _Stage(FrozenModel):
    id: Ident = Field(description="Unique stage id, used in results and SLA scopes.")
    providers: tuple[Ident, ...] | None = Field(
        None, min_length=1, description="Provider ids to run this stage against (default: all)."
    )
    prompts: tuple[Ident, ...] | None = Field(
        None, min_length=1, description="Prompt ids to use, round-robin (default: all)."
    )
    timeout: PositiveDuration | None = Field(None, description="Overrides defaults.timeout.")
    max_tokens: PositiveInt | None = Field(None, description="Overrides defaults.max_tokens.")
    retries: Retries | None = Field(None, description="Overrides defaults.retries.")


class _PhasedStage(_Stage):
    """A load stage whose first and last requests can be set apart, and whose requests in
    flight at the end are waited for or cut off."""

    warmup: PhaseSpan | None = Field(None, description=_WARMUP_DESCRIPTION)
    cooldown: PhaseSpan | None = Field(None, description=_COOLDOWN_DESCRIPTION)
    drain: DrainPolicy | None = Field(
        None, description=_DRAIN_DESCRIPTION + " Default: defaults.drain."
    )
    drain_timeout: PositiveDuration | None = Field(None, description=_DRAIN_TIMEOUT_DESCRIPTION)
    sla_includes_warmup: bool | None = Field(
        None, strict=True, description=_SLA_INCLUDES_WARMUP_DESCRIPTION
    )


class BurstStage(_PhasedStage):
    """All requests at once (offset 0), optionally repeated in waves: the worst case for
    queueing."""

    pattern: Literal["burst"] = Field(description="Load pattern.")
    requests: PositiveInt = Field(description="Number of requests sent together, per wave.")
    waves: PositiveInt = Field(
        1, description="Number of bursts, released at 0, interval, 2 x interval... (default 1)."
    )
    interval: PositiveDuration | None = Field(
        None, description="Time between the starts of two waves, e.g. 10s (needs waves >= 2)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> BurstStage:
        if self.interval is not None and self.waves == 1:
            raise FieldError(
                "'interval' separates waves: set 'waves' to 2 or more, or remove 'interval'",
                "interval",
            )
        if self.waves > 1 and self.interval is None:
            raise FieldError(
                f"{self.waves} waves need an 'interval' between them, e.g. interval: 10s", "waves"
            )
        _check_size(self.requests * self.waves)
        return self


ArrivalName = Literal["uniform", "poisson", "gamma"]


class _PacedStage(_PhasedStage):
    """Open loop at a set rate: how arrivals are spaced, and the cap on requests in flight."""

    arrival: ArrivalName = Field(
        "uniform",
        description="How arrivals are spaced: uniform (exactly 1/rate apart), poisson "
        "(exponential gaps) or gamma (gamma gaps of shape burstiness).",
    )
    burstiness: float | None = Field(
        None,
        gt=0,
        strict=True,
        description="Shape k of gamma gaps (arrival: gamma; default 1, which is poisson): "
        "below 1 burstier, above 1 more regular.",
    )
    seed: int = Field(
        0, strict=True, description="Seed of random arrivals: same file, same schedule."
    )
    max_concurrency: PositiveInt | None = Field(
        None, description="Cap on requests in flight; later arrivals wait for a slot."
    )

    @model_validator(mode="after")
    def _burstiness_needs_gamma(self) -> _PacedStage:
        if self.burstiness is not None and self.arrival != "gamma":
            raise FieldError(
                "'burstiness' shapes gamma arrivals: add 'arrival: gamma' or remove it",
                "burstiness",
            )
        return self


class ConstantRateStage(_PacedStage):
    """Open loop: arrivals at a set mean rate (request i at i / rate when uniform), whatever
    the server's speed."""

    pattern: Literal["constant-rate"] = Field(description="Load pattern.")
    rate: Rate = Field(description="Arrival rate, e.g. 5/s or 300/m.")
    duration: PositiveDuration | None = Field(
        None,
        description="Send every arrival due before this time (with requests: whichever "
        "ends first).",
    )
    requests: PositiveInt | None = Field(
        None, description="Send this many (with duration: whichever ends first)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> ConstantRateStage:
        if self.duration is None and self.requests is None:
            raise ValueError("a constant-rate stage needs 'duration', 'requests' or both")
        _check_expected_size(self.rate, self.duration, self.requests)
        return self


class RampStage(_PhasedStage):
    """Open loop with a rate that changes linearly (or in equal steps) from one value to
    another over the stage."""

    pattern: Literal["ramp"] = Field(description="Load pattern.")
    from_: RateOrZero = Field(
        alias="from", description="Arrival rate at the start, e.g. 1/s; 0 is allowed."
    )
    to: RateOrZero = Field(
        description="Arrival rate at the end, e.g. 20/s; below 'from' for a falling ramp."
    )
    duration: PositiveDuration = Field(description="Length of the ramp, e.g. 60s.")
    steps: Annotated[int, Field(strict=True, ge=2)] | None = Field(
        None,
        description="Change the rate in this many equal-duration steps, evenly spaced from "
        "'from' to 'to' inclusive (default: a smooth linear ramp).",
    )
    arrival: Literal["uniform", "poisson"] = Field(
        "uniform",
        description="uniform (arrival i where the expected count reaches i) or poisson.",
    )
    seed: int = Field(
        0, strict=True, description="Seed of poisson arrivals: same file, same schedule."
    )
    max_concurrency: PositiveInt | None = Field(
        None, description="Cap on requests in flight; later arrivals wait for a slot."
    )

    @model_validator(mode="after")
    def _bounded(self) -> RampStage:
        if self.from_ == 0 and self.to == 0:
            raise ValueError("a ramp from 0/s to 0/s sends nothing: raise 'from' or 'to'")
        _check_expected_size((self.from_ + self.to) / 2, self.duration, None)
        return self


class RateRange(FrozenModel):
    """The rates a search may try, both included."""

    from_: Rate = Field(alias="from", description="Lowest rate to try, e.g. 1/s.")
    to: Rate = Field(description="Highest rate to try, e.g. 64/s.")


class ConcurrencyRange(FrozenModel):
    """The concurrencies a search may try, both included."""

    from_: PositiveInt = Field(alias="from", description="Lowest concurrency to try, e.g. 1.")
    to: PositiveInt = Field(description="Highest concurrency to try, e.g. 64.")


class AutoSweep(FrozenModel):
    """GuideLLM-style sweep: a synchronous step (one request at a time) and a saturation
    step measure the slowest and the highest throughput, then constant-rate steps fill the
    range between them."""

    steps: PositiveInt = Field(
        description="Constant-rate steps spread evenly between the synchronous and the "
        "saturated throughput, both excluded (each already has its own step)."
    )
    saturation: PositiveInt = Field(
        64, description="Requests kept in flight by the saturation step (default 64)."
    )


def _steps_kind(value: Any) -> str:
    # A list of steps or a range to search: told apart by shape, so a mistake in one is
    # reported as that one's, not as a failed match of both.
    return "range" if isinstance(value, dict | RateRange | ConcurrencyRange) else "list"


RateSteps = Annotated[
    Annotated[tuple[Rate, ...], Tag("list")] | Annotated[RateRange, Tag("range")],
    Discriminator(_steps_kind),
]
ConcurrencySteps = Annotated[
    Annotated[tuple[PositiveInt, ...], Field(min_length=1), Tag("list")]
    | Annotated[ConcurrencyRange, Tag("range")],
    Discriminator(_steps_kind),
]


def _conditions(field: str, role: str) -> Callable[[Any], tuple[str, ...]]:
    """An SLA expression or a list of them, each parsed now so errors point at it."""

    def check(value: Any) -> tuple[str, ...]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list | tuple) or not texts:
            raise ValueError(f"'{field}' takes an SLA expression or a list of them ({role})")
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"'{field}' takes SLA expressions as strings ({role})")
            try:
                parse_sla(text)
            except SlaSyntaxError as exc:
                raise ValueError(f"{exc} ({field}: {role})") from None
        return tuple(texts)

    return check


_SLA_LIST_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
}
_STOP_ROLE = "the condition that ends the sweep, e.g. 'ttft.p95 > 2s'"
_SEARCH_ROLE = "the SLAs every rate must meet, e.g. 'ttft.p95 < 500ms'"
_CONCURRENCY_SEARCH_ROLE = "the SLAs every concurrency must meet, e.g. 'ttft.p95 < 500ms'"
StopConditions = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("stop_when", _STOP_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]
SearchSlas = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("find_max_rate", _SEARCH_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]
ConcurrencySearchSlas = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("find_max_concurrency", _CONCURRENCY_SEARCH_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]


def _search_precision(value: object) -> Precision | int:
    # A whole number stays one: it is also how a concurrency search's precision is written
    # (requests in flight), which a rate (a bare number is per second) cannot tell apart.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return parse_precision(value)


SearchPrecision = Annotated[
    Precision | int,
    PlainValidator(_search_precision),
    WithJsonSchema(
        {
            **precision_json_schema(),
            "description": "find_max_rate: 5% (of the rate) or 0.5/s (a bare number is per "
            "second); find_max_concurrency: a whole number of requests in flight, e.g. 2",
        }
    ),
]


class SweepStage(_PacedStage):
    """A series of steps at increasing load: open-loop rates or closed-loop concurrencies.
    Each step is its own stage in results, with the id ``<id>.<rate>rps`` or ``<id>.c<n>``.
    Four kinds decide steps at run time from the steps before: ``stop_when`` ends the sweep
    early, ``find_max_rate`` and ``find_max_concurrency`` search for the highest rate or
    concurrency meeting SLAs, ``auto`` places rate steps between the measured synchronous
    and saturated throughput."""

    pattern: Literal["sweep"] = Field(description="Load pattern.")
    rates: RateSteps | None = Field(
        None,
        description="One open-loop constant-rate step per rate, e.g. [1/s, 2/s, 5/s]; with "
        "find_max_rate, the range to search: {from: 1/s, to: 64/s}.",
    )
    concurrencies: ConcurrencySteps | None = Field(
        None,
        description="One closed-loop step per concurrency, e.g. [1, 4, 16]; with "
        "find_max_concurrency, the range to search: {from: 1, to: 64}.",
    )
    auto: AutoSweep | None = Field(
        None,
        description="Choose the rates at run time: a synchronous and a saturation step, then "
        "'steps' constant-rate steps between their throughputs, e.g. {steps: 5}.",
    )
    duration: PositiveDuration | None = Field(
        None, description="Length of each step (with requests: whichever ends first)."
    )
    requests: PositiveInt | None = Field(
        None, description="Requests of each step (with duration: whichever ends first)."
    )
    pause: Duration = Field(
        0.0, description="Idle time before each step after the first, e.g. 5s (default 0)."
    )
    stop_when: StopConditions | None = Field(
        None,
        description="End the sweep after the first step where this holds (any of a list), "
        "e.g. 'ttft.p95 > 2s'; that step is kept, later steps are not run.",
    )
    find_max_rate: SearchSlas | None = Field(
        None,
        description="Search 'rates: {from, to}' by bisection for the highest rate whose step "
        "meets every one of these SLAs, e.g. 'ttft.p95 < 500ms'.",
    )
    find_max_concurrency: ConcurrencySearchSlas | None = Field(
        None,
        description="Search 'concurrencies: {from, to}' by bisection for the highest "
        "concurrency whose step meets every one of these SLAs, e.g. 'ttft.p95 < 500ms'.",
    )
    precision: SearchPrecision | None = Field(
        None,
        description="The search stops when the highest passing and lowest failing steps are "
        "this close: for find_max_rate 5% (of the rate) or 0.5/s; for find_max_concurrency "
        "a whole number of requests in flight (default 1: neighbours).",
    )
    max_steps: Annotated[int, Field(strict=True, ge=2)] | None = Field(
        None,
        description="A search (find_max_rate, find_max_concurrency) runs at most this many "
        "steps, the two bounds included.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> SweepStage:
        given = [k for k in ("rates", "concurrencies", "auto") if getattr(self, k) is not None]
        if len(given) > 1:
            raise FieldError(
                "give one of 'rates' (open loop), 'concurrencies' (closed loop) or 'auto', "
                f"not {' and '.join(repr(k) for k in given)}",
                given[1],
            )
        if not given:
            raise ValueError("a sweep stage needs 'rates' (open loop), 'concurrencies' or 'auto'")
        if self.duration is None and self.requests is None:
            raise ValueError("a sweep stage needs 'duration', 'requests' or both, for each step")
        self._check_search()
        self._check_concurrency_search()
        decides = self.search_kind or ("auto" if self.auto else None)
        if self.stop_when is not None and decides is not None:
            raise FieldError(
                "'stop_when' ends a sweep over listed 'rates' or 'concurrencies'; "
                f"{decides} decides its own steps",
                "stop_when",
            )
        if self.concurrencies is not None:
            for key in ("arrival", "burstiness", "seed", "max_concurrency"):
                if key in self.model_fields_set:
                    raise FieldError(
                        f"'{key}' applies to a sweep over 'rates'; a sweep over "
                        "'concurrencies' is closed loop",
                        key,
                    )
            if isinstance(self.concurrencies, tuple):
                _no_repeats(self.concurrencies, "concurrencies", str)
        if self.requests is not None and self.rates is None:  # closed-loop steps
            _check_size(self.requests)
        if isinstance(self.rates, tuple):
            if not self.rates:
                raise FieldError("'rates' needs at least one rate", "rates")
            _no_repeats(self.rates, "rates", lambda r: f"{r:g}/s")
            _check_expected_size(max(self.rates), self.duration, self.requests)
        elif isinstance(self.rates, RateRange):
            _check_expected_size(self.rates.to, self.duration, self.requests)
        return self

    @property
    def search_kind(self) -> Literal["find_max_rate", "find_max_concurrency"] | None:
        if self.find_max_rate is not None:
            return "find_max_rate"
        if self.find_max_concurrency is not None:
            return "find_max_concurrency"
        return None

    @property
    def rate_precision(self) -> Precision | None:
        """``precision`` of a rate search: a whole number is per second."""
        if isinstance(self.precision, int):
            return Precision(float(self.precision), relative=False)
        return self.precision

    def _check_search(self) -> None:
        if self.find_max_rate is not None and self.find_max_concurrency is not None:
            raise FieldError(
                "give one of 'find_max_rate' (over 'rates') or 'find_max_concurrency' (over "
                "'concurrencies'), not both",
                "find_max_concurrency",
            )
        for key in ("precision", "max_steps"):
            if getattr(self, key) is not None and self.search_kind is None:
                raise FieldError(
                    f"'{key}' tunes 'find_max_rate' or 'find_max_concurrency': add one, or "
                    f"remove '{key}'",
                    key,
                )
        search = self.find_max_rate is not None
        if isinstance(self.rates, RateRange) and not search:
            raise FieldError(
                "a range of rates ({from, to}) is searched by 'find_max_rate'; to run fixed "
                "steps, list them: rates: [1/s, 2/s, 5/s]",
                "rates",
            )
        if not search:
            return
        if not isinstance(self.rates, RateRange):
            raise FieldError(
                "find_max_rate searches a range of rates: give rates: {from: 1/s, to: 64/s}",
                "rates" if self.rates is not None else "find_max_rate",
            )
        if self.rates.from_ >= self.rates.to:
            raise FieldError(
                f"the search range must rise: 'from' ({self.rates.from_:g}/s) is not below "
                f"'to' ({self.rates.to:g}/s)",
                "rates",
            )
        if self.precision is None and self.max_steps is None:
            raise FieldError(
                "find_max_rate needs to know when to stop: give 'precision' (e.g. 5% or "
                "0.5/s), 'max_steps' or both",
                "find_max_rate",
            )

    def _check_concurrency_search(self) -> None:
        search = self.find_max_concurrency is not None
        if isinstance(self.concurrencies, ConcurrencyRange) and not search:
            raise FieldError(
                "a range of concurrencies ({from, to}) is searched by 'find_max_concurrency'; "
                "to run fixed steps, list them: concurrencies: [1, 4, 16]",
                "concurrencies",
            )
        if not search:
            return
        if not isinstance(self.concurrencies, ConcurrencyRange):
            raise FieldError(
                "find_max_concurrency searches a range of concurrencies: give "
                "concurrencies: {from: 1, to: 64}",
                "concurrencies" if self.concurrencies is not None else "find_max_concurrency",
            )
        if self.concurrencies.from_ >= self.concurrencies.to:
            raise FieldError(
                f"the search range must rise: 'from' ({self.concurrencies.from_}) is not below "
                f"'to' ({self.concurrencies.to})",
                "concurrencies",
            )
        if self.precision is not None and not isinstance(self.precision, int):
            raise FieldError(
                "find_max_concurrency's precision counts requests in flight: give a whole "
                f"number, e.g. 2 (got {self.precision})",
                "precision",
            )


def _no_repeats(values: tuple[Any, ...], key: str, shown: Callable[[Any], str]) -> None:
    # Each step becomes a stage named after its value: two equal steps could not be told apart.
    for i, value in enumerate(values):
        if value in values[:i]:
            raise FieldError(
                f"{shown(value)} appears twice in '{key}': each step needs its own", key
            )


class ConcurrencyStage(_PhasedStage):
    """Closed loop: keep this many requests in flight until done."""

    pattern: Literal["concurrency"] = Field(description="Load pattern.")
    concurrency: PositiveInt = Field(description="Requests kept in flight.")
    requests: PositiveInt | None = Field(None, description="Total requests to send.")
    duration: PositiveDuration | None = Field(
        None, description="Stop starting requests after this long."
    )

    @model_validator(mode="after")
    def _bounded(self) -> ConcurrencyStage:
        if self.duration is None and self.requests is None:
            raise ValueError("a concurrency stage needs 'requests', 'duration' or both")
        if self.requests is not None:
            _check_size(self.requests)
        return self


class IdleProbeStage(_Stage):
    """One request, then after each gap of idle time (nothing in flight) one more: how the
    provider answers after sitting idle (scale to zero, evicted caches)."""

    pattern: Literal["idle-probe"] = Field(description="Load pattern.")
    gaps: tuple[Duration, ...] = Field(
        min_length=1,
        description="Idle time before each probe after the first, e.g. [0s, 30s, 2m, 10m].",
    )


def _check_size(n: float) -> None:
    if n > MAX_REQUESTS_PER_STAGE:
        raise ValueError(
            f"schedules more than {MAX_REQUESTS_PER_STAGE} requests, the most lens plans "
            "for one stage"
        )


def _check_expected_size(rate: float, duration: float | None, requests: int | None) -> None:
    """The size check of an open-loop schedule, before it is drawn: random arrivals make
    its exact length known only to the compiler."""
    expected = [float(requests)] if requests is not None else []
    if duration is not None:
        expected.append(rate * duration)
    _check_size(min(expected))


Stage = Annotated[
    BurstStage | ConstantRateStage | ConcurrencyStage | RampStage | SweepStage | IdleProbeStage,
    Field(discriminator="pattern"),
]
PhasedStage = BurstStage | ConstantRateStage | ConcurrencyStage | RampStage | SweepStage
PATTERNS: tuple[str, ...] = (
    "burst",
    "constant-rate",
    "concurrency",
    "ramp",
    "sweep",
    "idle-probe",
)

# --- SLA -----------------------------------------------------------------------------------


class SlaAssert(FrozenModel):
    """An SLA assertion, optionally limited to one provider and/or one stage."""

    assert_: str = Field(
        alias="assert",
        description="'<metric>[.<stat>] <op> <value>[unit]', e.g. 'ttft.p95 < 800ms'.",
    )
    provider: Ident | None = Field(None, description="Only judge this provider.")
    stage: Ident | None = Field(None, description="Only judge this stage.")

    @field_validator("assert_")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse_sla(text)  # SlaSyntaxError is a ValueError: pydantic reports it at 'assert'
        return text


def _sla_entry(value: Any) -> Any:
    # The short form "ttft.p95 < 800ms" is the long form without scope.
    return {"assert": value} if isinstance(value, str) else value


SlaEntry = Annotated[SlaAssert, BeforeValidator(_sla_entry, json_schema_input_type=str | SlaAssert)]

# --- measurement integrity -----------------------------------------------------------------


class Integrity(FrozenModel):
    """When lens distrusts its own numbers, and what counts as a cold start."""

    max_loop_lag: PositiveDuration = Field(
        0.025,
        description="Client event-loop lag (p99) above which the run is flagged overloaded "
        "and its SLA verdicts inconclusive, e.g. 25ms.",
    )
    max_cpu: Percent = Field(
        0.9, description="Client CPU (share of one core) above which the run is overloaded."
    )
    cold_after: PositiveDuration = Field(
        60.0, description="Idle time after which a provider's next request counts as cold."
    )
    buffered_share: Percent = Field(
        0.5,
        description="Share of a typical stream's chunks arriving in the same read above "
        "which the stream is flagged as buffered.",
    )


# --- limits --------------------------------------------------------------------------------

Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(size_json_schema())]
DEFAULT_MAX_EVENT_BYTES = 1024**2
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024**2


class Limits(FrozenModel):
    """Caps on what one response may make lens hold: a server that sends an endless line or
    body ends that request as a protocol_error instead of eating memory and CPU."""

    max_event_bytes: Size = Field(
        DEFAULT_MAX_EVENT_BYTES,
        description="Largest streamed event (an SSE event or line) lens buffers, e.g. 1MiB "
        "(default 1MiB).",
    )
    max_response_bytes: Size = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        description="Largest response body lens reads, e.g. 64MiB (default 64MiB).",
    )


# --- exports -------------------------------------------------------------------------------


def _export_target(text: str) -> str:
    try:
        parse_target(text)
    except TargetError as exc:  # its message masks credentials; pydantic positions it
        raise ValueError(str(exc)) from None
    return text


def _export_schema(kinds: tuple[str, ...]) -> WithJsonSchema:
    """The schema checks the shape only (one of ``kinds``); lens also checks each kind's
    destination."""
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\s*({'|'.join(kinds)})\s*=.*\S",
            "description": "KIND=DEST, e.g. csv=out/requests.csv, junit=out/sla.xml, "
            "prometheus=http://127.0.0.1:9091?job=lens, "
            "influx=http://127.0.0.1:8086/write?db=lens",
        }
    )


ExportEntry = Annotated[str, AfterValidator(_export_target), _export_schema(EXPORT_KINDS)]

# --- the scenario --------------------------------------------------------------------------


def _version(value: Any) -> Any:
    if type(value) is not int or value not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise ValueError(
            f"unsupported scenario version {show(value)}; this lens reads version {supported}"
        )
    return value


def _ids_as_property_names(schema: dict[str, Any]) -> None:
    """pydantic renders constrained dict keys as patternProperties, which lets keys that do
    not match through unchecked; propertyNames + additionalProperties rejects them."""
    (pattern, value_schema), *_ = schema.pop("patternProperties").items()
    schema["propertyNames"] = {"pattern": pattern}
    schema["additionalProperties"] = value_schema


class Scenario(FrozenModel):
    """A load test: providers to call, prompts to send, load stages, and SLA assertions."""

    model_config = ConfigDict(
        title="lens scenario (version 1)",
        json_schema_extra={"$id": "https://lens.dev/schemas/scenario-v1.json"},
    )

    version: Annotated[Literal[1], BeforeValidator(_version)] = Field(
        description="Scenario format version; this lens reads 1."
    )
    name: NonEmptyStr = Field(description="Short name, used in results and reports.")
    description: str = Field("", description="What this scenario measures, for humans.")
    defaults: Defaults = Field(
        default=Defaults.model_validate({}), description="Values stages inherit."
    )
    providers: dict[Ident, Provider] = Field(
        min_length=1,
        description="The endpoints to load, by id.",
        json_schema_extra=_ids_as_property_names,
    )
    prompts: tuple[Prompt, ...] = Field(
        min_length=1, description="What to send; stages use them round-robin."
    )
    load: tuple[Stage, ...] = Field(min_length=1, description="Stages, run in order.")
    sla: tuple[SlaEntry, ...] = Field(
        (), description="Assertions on the results; a failing one fails the run."
    )
    pricing: Annotated[tuple[PricingEntry, ...], FROM_ENV] = Field(
        (), description="Prices that replace or extend the built-in catalog (USD per 1M tokens)."
    )
    integrity: Integrity = Field(
        default=Integrity.model_validate({}),
        description="Thresholds of lens's self-checks (harness overload, cold starts).",
    )
    limits: Limits = Field(
        default=Limits.model_validate({}),
        description="Caps on event and response sizes; a response past one ends as "
        "protocol_error (sizes like 1MiB, 64MiB).",
    )
    allow_env_in_prompts: bool = Field(
        False,
        strict=True,
        description="Expand ${VAR} in prompts (inline messages and prompt files) too. By "
        "default only configuration fields (credentials, URLs, headers, model, region, "
        "export, budget, prices) read the environment, so a scenario cannot send a variable "
        "to its server as prompt text.",
    )
    budget: Annotated[Usd | None, FROM_ENV] = Field(
        None,
        description="Spending cap in USD, e.g. $10: lens stops scheduling new requests "
        "before the run's cost could pass it.",
    )
    export: Annotated[tuple[ExportEntry, ...], FROM_ENV] = Field(
        (),
        description="Where lens run also sends its results, as KIND=DEST strings "
        "(added to any --export flags).",
    )

    # Where each value was written; set by the loader, empty for scenarios built in code.
    _source: SourceMap = PrivateAttr(default_factory=SourceMap)

    @property
    def source_map(self) -> SourceMap:
        return self._source


# --- plugins -------------------------------------------------------------------------------


def plugin_provider_models() -> tuple[type[PluginProviderSettings], ...]:
    """The settings models of the installed provider plugins (``lens.entry_points``),
    each checked: a ``PluginProviderSettings`` whose ``type`` is the entry point's name."""
    builtin = set(PROVIDER_TYPES)
    models = []
    for name, plugin in provider_plugins().items():
        model = plugin.settings_model
        where = provider_plugin_origin(name)
        if not (isinstance(model, type) and issubclass(model, PluginProviderSettings)):
            raise PluginError(
                f"{where}: settings_model must subclass lens.plugins.ProviderSettings"
            )
        if name in builtin:
            raise PluginError(f"{where}: provider type {name!r} is built into lens")
        if get_args(model.model_fields["type"].annotation) != (name,):
            raise PluginError(
                f"{where}: settings_model must declare type: Literal[{name!r}], "
                "the entry point's name"
            )
        models.append(model)
    return tuple(models)


@functools.cache
def scenario_model() -> type[Scenario]:
    """``Scenario``, or with plugins installed a subclass whose ``providers`` also accept
    the provider plugins' types and whose ``export`` also the exporter plugins' kinds:
    what the loader validates and ``lens schema`` describes.  Built once per process."""
    plugins = plugin_provider_models()
    kinds = known_kinds()
    if not plugins and kinds == EXPORT_KINDS:
        return Scenario
    fields: dict[str, Any] = {}
    if plugins:
        builtin = get_args(get_args(Provider)[0])
        union = Annotated[Union[(*builtin, *plugins)], Field(discriminator="type")]  # type: ignore[valid-type]
        fields["providers"] = _widened("providers", dict[Ident, union])
    if kinds != EXPORT_KINDS:
        entry = Annotated[str, AfterValidator(_export_target), _export_schema(kinds)]
        fields["export"] = _widened("export", tuple[entry, ...])
    return create_model("Scenario", __base__=Scenario, __module__=__name__, **fields)


def _widened(name: str, annotation: Any) -> tuple[Any, Any]:
    """``Scenario`` field ``name`` (constraints, markers, default, description) with the
    wider type ``annotation``, for ``create_model``."""
    info = Scenario.model_fields[name]
    field = Field(
        info.default, description=info.description, json_schema_extra=info.json_schema_extra
    )
    return Annotated[(annotation, *info.metadata)], field
