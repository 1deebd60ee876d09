"""Providers: one settings model per provider type, the tagged union of them, and the type names."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from lens.scenario.model.base import (
    Duration,
    EnvUrl,
    FieldError,
    FrozenModel,
    Percent,
    PositiveInt,
    Region,
)
from lens.scenario.model.network import KeepAlive, Network
from lens.scenario.model.prices import Priced
from lens.scenario.model.servermetrics import ServerMetricsSetting
from lens.scenario.model.wire import ApiKey, EnvHeaderText, EnvNonEmptyStr, Headers
from lens.scenario.model.workloads import Body, TokenizerSpec, body_field


class Workload(FrozenModel):
    """Request-shaping settings of the providers whose adapters apply them."""

    body: Body = body_field()


class ChatWorkload(Workload):
    """Chat Completions providers: also a tokenizer for responses without usage."""

    tokenizer: TokenizerSpec | None = Field(
        None,
        description="Counts output tokens when the server reports no usage (token_source: "
        "tokenizer): estimate, {hf: PATH} or {tiktoken: ENCODING}. Default: the "
        "scenario's tokenizer:.",
    )


Endpoint = Literal["chat", "completions", "embeddings"]
# The types whose adapter (lens.providers.openai_chat) serves every endpoint and stream: false.
ENDPOINT_TYPES = ("openai-compatible", "openai", "simulated (protocol: openai)")


class OpenAIEndpoint(FrozenModel):
    """Which OpenAI API a provider's requests go to, and whether they stream
    (lens.providers.openai_chat): the types whose adapter serves them all take these."""

    endpoint: Endpoint = Field(
        "chat",
        description="chat (/chat/completions, the prompt's messages), completions "
        "(/completions, the prompt's texts joined by blank lines as one prompt string) or "
        "embeddings (/embeddings: the prompt's texts as one batch of inputs; never streamed).",
    )
    stream: bool = Field(
        True,
        strict=True,
        description="false: one JSON response per request, for non-streaming latency: e2e and "
        "tokens from its usage, no TTFT/ITL/TPOT (absent, never e2e).",
    )
    inputs_per_request: PositiveInt | None = Field(
        None,
        description="endpoint: embeddings: inputs in each request's batch, the prompt's texts "
        "repeated in turn to this many (default: the prompt's texts, one input each).",
    )

    def _check_endpoint(self, output_tokens: str = "natural") -> None:
        if self.inputs_per_request is not None and self.endpoint != "embeddings":
            raise FieldError(
                "inputs_per_request is the batch size of endpoint: embeddings, and this "
                f"provider's endpoint is {self.endpoint}",
                "inputs_per_request",
            )
        if self.endpoint == "embeddings" and output_tokens == "exact":
            raise FieldError(
                "output_tokens: exact asks for generated tokens, and endpoint: embeddings "
                "generates none",
                "output_tokens",
            )


def _streams_only(kind: str, stream: bool) -> None:
    """``stream: false`` where the type's adapter reads only streams: refused at the key."""
    if not stream:
        raise FieldError(
            f"stream: false is not supported for {kind} providers (lens reads their "
            f"streams only); it is for {', '.join(ENDPOINT_TYPES)}",
            "stream",
        )


class StreamOnly(FrozenModel):
    """Providers whose adapter reads only streams: ``stream:`` is there to say so."""

    stream: bool = Field(
        True,
        strict=True,
        description="Always true for this type (false is for openai-compatible, openai and "
        "simulated with protocol: openai).",
    )

    @model_validator(mode="after")
    def _streams(self) -> StreamOnly:
        _streams_only(str(getattr(self, "type", "these")), self.stream)
        return self


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


class SimulatedProvider(ServerMetricsSetting, Priced, KeepAlive, Workload, OpenAIEndpoint):
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
    engine_timings: bool = Field(
        False,
        strict=True,
        description="protocol openai: end each stream with llama.cpp's `timings` object "
        "(prefill and decode times as the simulator planned them), as llama-server does.",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> SimulatedProvider:
        if self.protocol != "openai":
            if self.endpoint != "chat":
                raise FieldError(
                    f"endpoint: {self.endpoint} needs protocol: openai (the simulator serves "
                    f"completions and embeddings in OpenAI's protocol only)",
                    "endpoint",
                )
            _streams_only(f"simulated (protocol: {self.protocol})", self.stream)
        self._check_endpoint()
        return self


_HEADERS_DESCRIPTION = (
    "Extra HTTP headers sent with every request: 'Name: value', or 'Name: {value: ${VAR}, "
    "secret: true}' to mask the value in plans and redact it from every output."
)
_MAX_TOKENS_FIELD_DESCRIPTION = "Request field carrying the output token limit."
_INCLUDE_USAGE_DESCRIPTION = "Ask for token usage in the stream (stream_options.include_usage)."
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


def _headers() -> Any:
    return Field(default_factory=dict, description=_HEADERS_DESCRIPTION)


class OpenAICompatibleProvider(ServerMetricsSetting, Priced, Network, ChatWorkload, OpenAIEndpoint):
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
    output_tokens: Literal["natural", "exact"] = Field(
        "natural",
        description="exact: ask the server to generate exactly max_tokens (vLLM: ignore_eos: "
        "true and min_tokens = max_tokens), so TPOT does not depend on when the model stops; "
        "natural: the model stops when it will.",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> OpenAICompatibleProvider:
        self._check_endpoint(self.output_tokens)
        return self


class OpenAIProvider(ServerMetricsSetting, Priced, Network, ChatWorkload, OpenAIEndpoint):
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

    @model_validator(mode="after")
    def _endpoint(self) -> OpenAIProvider:
        self._check_endpoint()
        return self


class OpenAIResponsesProvider(ServerMetricsSetting, Priced, Network, Workload, StreamOnly):
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


class AnthropicProvider(ServerMetricsSetting, Priced, Network, Workload, StreamOnly):
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


class GeminiProvider(ServerMetricsSetting, Priced, Network, Workload, StreamOnly):
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


class BedrockProvider(ServerMetricsSetting, Priced, Network, Workload, StreamOnly):
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


class AzureOpenAIProvider(ServerMetricsSetting, Priced, Network, ChatWorkload, StreamOnly):
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


class PluginProviderSettings(ServerMetricsSetting, Priced, Network):
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
