"""The execution plan: every default resolved, every arrival an offset, nothing sent yet.

A ``Plan`` is what ``lens plan`` prints and what the executor runs.  It never holds a
secret in the clear: API keys are ``Secret`` values whose repr and JSON form are masked.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from lens.netconfig import ProxyRules, TlsOptions, parse_proxy_url
from lens.pricing import ProviderPrice

# SweepStep (which step of a sweep a unit is) lives with the records: a run's StageWindow
# carries it, and records sit below the plan.
from lens.records import Phase, Repetition, SweepStep
from lens.scenario.model import PluginProviderSettings
from lens.scenario.sla import SlaExpr
from lens.scenario.thresholds import Threshold
from lens.scenario.tokenizers import Tokenizer
from lens.scenario.units import Precision

ProviderType = Literal[
    "openai",
    "openai-compatible",
    "simulated",
    "anthropic",
    "gemini",
    "bedrock",
    "azure-openai",
    "openai-responses",
]
# Wire protocols the simulated server can speak (``type: simulated`` + ``protocol:``).
SimProtocol = Literal[
    "openai", "openai-responses", "anthropic", "gemini", "bedrock", "azure-openai"
]
PatternName = Literal[
    "burst", "constant-rate", "concurrency", "ramp", "sweep", "idle-probe", "trace"
]
# How a schedule's offsets were drawn: at once (burst), evenly, or from a seeded process.
ArrivalProcess = Literal["burst", "uniform", "poisson", "gamma", "trace"]


# Records results.json lists when the scenario does not say (results: {records: ...}):
# every one up to this many, an evenly spaced sample of this many beyond.  As many as a
# sketch keeps exactly (lens.metrics.sketch), enough for lens compare's bootstrap; a run
# holds them (~1.2 KB each, ~4.5 KB more while results are built), so memory stays flat.
DEFAULT_RESULTS_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential. Its value only leaves through ``reveal()``, at the HTTP seam."""

    _value: str = field(repr=False)
    source: str = ""  # where it came from, e.g. "${OPENAI_API_KEY}", safe to print

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source or '***'})"

    def __str__(self) -> str:
        return "***"

    # Plans and records are dumped with pydantic (``TypeAdapter(Plan).dump_json``), which
    # would otherwise walk the dataclass fields and write the value: dump the repr instead.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(repr)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "a masked credential, e.g. Secret(${VAR})"}


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Behaviour of the built-in simulated server (seconds, rates as fractions)."""

    ttft_s: float = 0.15
    itl_s: float = 0.015
    output_tokens: int = 64
    jitter: float = 0.0  # relative standard deviation applied to each delay
    error_429: float = 0.0
    error_500: float = 0.0
    cut_stream: float = 0.0
    seed: int = 0
    protocol: SimProtocol = "openai"  # the wire protocol the simulator speaks
    capacity: int | None = None  # responses generated at once; None: no limit
    # Chat Completions: the finish chunk carries llama.cpp's ``timings`` (its plan's prefill
    # and decode times), so lens's engine figures are tested without a real engine.
    engine_timings: bool = False


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """Which HTTP proxy a provider's requests go through (rules: lens.netconfig).

    ``mode`` ``env``: the proxy variables as read when the plan was compiled (``env``
    maps HTTP_PROXY / HTTPS_PROXY / ALL_PROXY to their URLs, ``no_proxy`` is NO_PROXY);
    ``url``: the provider's own ``proxy:``; ``none``: direct.  Proxy URLs may carry a
    password, so each is a ``Secret`` whose source is the masked URL.
    """

    mode: Literal["env", "url", "none"] = "none"
    url: Secret | None = None
    env: tuple[tuple[str, Secret], ...] = ()
    no_proxy: str = ""

    def rules(self) -> ProxyRules:
        """The transport's form (the plan has validated every URL it holds)."""
        if self.mode == "url" and self.url is not None:
            return ProxyRules(mode="url", url=parse_proxy_url(self.url.reveal()))
        if self.mode == "env":
            variables = {name: secret.reveal() for name, secret in self.env}
            return ProxyRules.from_env({**variables, "NO_PROXY": self.no_proxy})
        return ProxyRules()


@dataclass(frozen=True, slots=True)
class TlsSpec:
    """How https origins are verified: CA file/folder (None and None: certifi's bundle),
    a client certificate, or no verification at all.  ``ca_source`` says where the CAs
    came from (``certifi``, ``SSL_CERT_FILE``, ``tls.ca_bundle`` ...), for plans."""

    ca_file: str | None = None
    ca_dir: str | None = None
    ca_source: str = "certifi"
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def options(self) -> TlsOptions:
        """What the run builds its SSL context from (equal options share one context)."""
        return TlsOptions(self.ca_file, self.ca_dir, self.client_cert, self.client_key, self.verify)


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one response may make lens hold (bytes); past one, the request ends as
    ``protocol_error``."""

    max_event_bytes: int = 1024**2  # one SSE event, or one line of a stream
    max_response_bytes: int = 64 * 1024**2  # one response body


@dataclass(frozen=True, slots=True)
class OpenAISettings:
    """Chat Completions (``openai``, ``openai-compatible``): the field the output limit is
    sent in, and whether the stream is asked for its usage (``stream_options``)."""

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    include_usage: bool = True
    # output_tokens: exact: ignore_eos + min_tokens = the limit (vLLM, SGLang), so every
    # response is exactly max_tokens long.
    exact_output: bool = False


Endpoint = Literal["chat", "completions", "embeddings"]


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """Which OpenAI API a provider's requests go to and whether they stream (the scenario's
    ``endpoint:``, ``stream:``, ``inputs_per_request:``; lens.providers.openai_chat)."""

    kind: Endpoint = "chat"
    stream: bool = True  # embeddings never stream, whatever this says
    inputs_per_request: int | None = None  # embeddings: None, the prompt's texts

    @property
    def streams(self) -> bool:
        """Whether responses are read as a stream of events."""
        return self.stream and self.kind != "embeddings"


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    version: str = "2023-06-01"  # the anthropic-version header


@dataclass(frozen=True, slots=True)
class BedrockSettings:
    """Credentials: with the spec's ``api_key`` a Bedrock API key (bearer), without one
    SigV4 from the AWS credential chain (``aws_profile``: a named profile of it)."""

    region: str | None = None  # None: the endpoint's host names it (base_url)
    aws_profile: str | None = None
    api: Literal["converse", "invoke"] = "converse"  # converse-stream, invoke-with-response-stream


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """Azure OpenAI: Chat Completions on the resource's URLs, the classic ones
    (``/deployments/{deployment}/``) when ``api_version`` is set, else the v1 API."""

    deployment: str
    api_version: str | None = None
    auth: Literal["key", "entra"] = "key"  # the api-key header, or an Entra ID bearer token
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    include_usage: bool = True


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """A provider plugin's own settings: the validated, frozen instance of its settings
    model (a ``lens.plugins.ProviderSettings``), for its adapter to read."""

    values: PluginProviderSettings


# What one provider type needs beyond the common fields; None: nothing (gemini,
# openai-responses).
ProviderSettings = (
    OpenAISettings
    | AnthropicSettings
    | BedrockSettings
    | AzureSettings
    | SimSettings
    | PluginSettings
    | None
)


@dataclass(frozen=True, slots=True)
class ServerMetricsSpec:
    """A provider's ``server_metrics:``: the engine's Prometheus endpoint lens scrapes before,
    every ``every_s`` during, and after each stage (lens.run.servermetrics)."""

    url: str | None  # None: a simulated provider's own /metrics, known once it listens
    every_s: float
    timeout_s: float
    names: tuple[str, ...] = ()  # globs of family names to keep; empty: every family


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    type: str  # a ProviderType, or the type of a provider plugin (lens.entry_points)
    model: str
    base_url: str | None  # None for `simulated` until its server is started
    api_key: Secret | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Lower-cased names of headers the scenario marked ``secret: true``: their values are
    # masked and redacted from every output, like those of headers named like credentials
    # (``SECRET_HEADER_NAME``).
    secret_headers: frozenset[str] = frozenset()
    settings: ProviderSettings = None  # the type's own: see ProviderSettings
    price: ProviderPrice | None = None  # resolved from catalog + scenario; None: unknown
    limits: Limits = Limits()  # the scenario's limits:, for this provider's responses
    # Network: proxy (None: direct; simulated providers always are), TLS, and whether a
    # connection carries more than one request.
    proxy: ProxySpec | None = None
    tls: TlsSpec = TlsSpec()
    keep_alive: bool = True
    # Counts output tokens when the server reports no usage (token_source: tokenizer); None:
    # lens's ~4 characters per token (token_source: estimated).
    tokenizer: Tokenizer | None = None
    # openai-compatible, openai and simulated (protocol openai): chat, completions or
    # embeddings, streamed or not.  The default for every other type.
    endpoint: EndpointSpec = EndpointSpec()
    # The engine's metrics endpoint to scrape during the run; None: not scraped.
    server_metrics: ServerMetricsSpec | None = None

    @property
    def plugin_settings(self) -> PluginProviderSettings | None:
        """A provider plugin's settings instance (None for a built-in type): the name the
        plugin contract (``lens.plugins``) gives adapters to read."""
        return self.settings.values if isinstance(self.settings, PluginSettings) else None


# Header names whose values are secret whether or not the scenario says so (issue 10).
SECRET_HEADER_NAME = re.compile(
    r"authorization|api-key|x-api-key|x-goog-api-key|token|secret|password|cookie", re.I
)


def header_is_secret(spec: ProviderSpec, name: str) -> bool:
    """Whether the value of header ``name`` of ``spec`` must never be shown."""
    return name.lower() in spec.secret_headers or SECRET_HEADER_NAME.search(name) is not None


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


# The think-time draw's redraws before it clamps (a truncated distribution keeps its shape).
_THINK_REDRAWS = 1000


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """The wait between a conversation's reply and its next turn (seconds): fixed, or drawn
    per turn (``draw``) from a distribution of these parameters."""

    dist: Literal["fixed", "uniform", "normal", "lognormal", "exponential"] = "fixed"
    mean_s: float = 0.0
    stdev_s: float = 0.0
    min_s: float | None = None
    max_s: float | None = None

    def draw(self, rng: random.Random) -> float:
        """One think time, never below zero (nor outside min/max: drawn again)."""
        low = self.min_s or 0.0
        high = self.max_s if self.max_s is not None else math.inf
        if self.dist == "fixed":
            return min(max(self.mean_s, low), high)
        if self.dist == "uniform":
            return rng.uniform(low, high)
        value = self.mean_s
        for _ in range(_THINK_REDRAWS):
            if self.dist == "normal":
                value = rng.gauss(self.mean_s, self.stdev_s)
            elif self.dist == "exponential":
                value = rng.expovariate(1 / self.mean_s) if self.mean_s > 0 else 0.0
            else:  # lognormal: mean and stdev of the times themselves
                sigma2 = math.log1p((self.stdev_s / self.mean_s) ** 2)
                mu = math.log(self.mean_s) - sigma2 / 2
                value = rng.lognormvariate(mu, math.sqrt(sigma2))
            if low <= value <= high:
                return value
        return min(max(value, low), high)

    def describe(self) -> str:
        """``2s``, ``exponential mean 2s`` ..., for plans."""
        if self.dist == "fixed":
            return f"{self.mean_s:g}s"
        if self.dist == "uniform":
            return f"uniform {self.min_s or 0:g}-{self.max_s:g}s"
        text = f"{self.dist} mean {self.mean_s:g}s"
        if self.dist != "exponential":
            text += f" stdev {self.stdev_s:g}s"
        if self.min_s is not None or self.max_s is not None:
            text += (
                f" in [{self.min_s or 0:g}, {'inf' if self.max_s is None else f'{self.max_s:g}'}]s"
            )
        return text


@dataclass(frozen=True, slots=True)
class Conversation:
    """A prompt that is a multi-turn session: the user messages of its turns (the first is
    the prompt's last message), the reference reply after each (None: none known), what
    later turns carry as the assistant's replies, and the think time between turns."""

    turns: tuple[str, ...]
    replies: tuple[str | None, ...] = ()
    carry: Literal["responses", "reference"] = "responses"
    think: ThinkTime = ThinkTime()
    seed: int = 0  # of the think-time draws

    def think_s(self, session: int, turn: int) -> float:
        """The think time before ``turn`` (2, 3, ...) of session ``session``: the same for
        the same session and turn in every run (and every worker)."""
        if self.think.dist == "fixed":
            return self.think.draw(_NO_RANDOM)
        return self.think.draw(random.Random(f"lens-think:{self.seed}:{session}:{turn}"))

    def history(
        self, lead: tuple[Message, ...], replies: list[str], turn: int
    ) -> tuple[Message, ...]:
        """The messages turn ``turn`` (1-based) sends: ``lead`` (the system messages), then
        each earlier turn and the reply to it, then the turn's own user message."""
        out = list(lead)
        for j in range(turn - 1):
            out.append(Message("user", self.turns[j]))
            out.append(Message("assistant", replies[j]))
        out.append(Message("user", self.turns[turn - 1]))
        return tuple(out)


_NO_RANDOM = random.Random(0)  # a fixed think time draws nothing


@dataclass(frozen=True, slots=True)
class PromptSpec:
    id: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    weight: float = 1.0
    source: str = ""  # "inline", "synthetic(seed=7)", "prompts/support.jsonl:3"
    # Extra request fields, deep-merged into the body (lens.plan.workloads.unit_prompts adds
    # the stage's and the provider's under them at run time).
    body: Mapping[str, Any] = field(default_factory=dict)
    # Input tokens of the message texts, counted by the scenario's tokenizer (None: not
    # counted, e.g. a prompt built in code).
    input_tokens: int | None = None
    # A multi-turn session (``messages`` is its first turn); None: one request.
    conversation: Conversation | None = None
    # A conversation's turn whose reply text the next turn sends (carry: responses): the
    # adapter's decoder keeps the text (lens.providers.base.StreamOutcome.text).  Only
    # these pay for keeping it.
    keep_reply: bool = False
    # A conversation's turn (1-based), built at run time with the history so far.
    turn: int | None = None
    # Synthetic prompts with ``shared_prefix_tokens``: the group whose leading text this one
    # shares (records carry it).  None: no shared prefix.
    prefix_group: int | None = None

    def token_limit(self, stage_max_tokens: int | None) -> int | None:
        """The output limit to send: the prompt's own (synthetic, JSONL) beats the stage's."""
        return self.max_tokens if self.max_tokens is not None else stage_max_tokens


@dataclass(frozen=True, slots=True)
class TokenizerPreflight:
    """``tokenizer: server``: the tokenize calls ``lens run`` makes before its run clock
    starts.  In ``lens plan`` only ``planned_calls`` is known (the figures are estimates
    until then); the run's plan has ``calls`` and ``seconds`` instead."""

    tokenizers: tuple[str, ...]  # e.g. ("server:vllm",)
    origins: tuple[str, ...]  # where each counts, e.g. ("http://127.0.0.1:8000",)
    planned_calls: int | None = None  # lens plan: calls the pre-flight will make, about
    calls: int | None = None  # lens run: calls made
    seconds: float | None = None  # lens run: their wall time, outside every stage


@dataclass(frozen=True, slots=True)
class PromptSource:
    """What one prompt entry of the scenario yields, as the plan lists it before anything is
    sent: how many prompts, and their input lengths counted by ``tokenizer``."""

    id: str
    kind: str  # messages | synthetic | file | dataset
    prompts: int
    tokenizer: str
    min_tokens: int
    p50_tokens: int
    p90_tokens: int
    max_tokens: int
    detail: str = ""  # e.g. "data/chat.jsonl: 40 read, 31 within the filter, sampled 20"
    output: str = ""  # how max_tokens is set, e.g. "from the reference answers (3 without)"


class TraceSource:
    """The rows a ``pattern: trace`` unit replays (lens.plan.trace.TraceReplay): request i
    sends row i, whose prompt is made when it is sent."""

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def prompt_id(self, row: int) -> str:
        raise NotImplementedError

    def sizing_prompt(self, row: int) -> PromptSpec:
        """Row ``row``'s lengths without its text, for cost bounds."""
        raise NotImplementedError

    def prompts(self, body: Mapping[str, Any]) -> Mapping[str, PromptSpec]:
        """Every row's prompt by id, made when looked up, with ``body``."""
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # A plan dumped as JSON shows what the trace is (the repr), not its rows.
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(repr)
        )


class OffsetSource:
    """Offsets computed from a schedule's parameters (lens.plan.arrivals), so a plan holds
    the parameters and not one float per arrival: an hour at 1,000 req/s is 3.6M of them."""

    __slots__ = ()

    def __iter__(self) -> Iterator[float]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def offset(self, i: int) -> float:
        raise NotImplementedError

    @property
    def random_access(self) -> bool:
        """offset(i) costs O(1) (uniform, burst), not a walk from the start (random)."""
        raise NotImplementedError

    def summary(self, start: int, step: int) -> tuple[int, float, float]:
        """(count, first, last) of the arrivals ``start``, ``start + step``, ..."""
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # A plan dumped as JSON shows the parameters (the repr), not millions of offsets.
        return core_schema.is_instance_schema(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(repr)
        )


@dataclass(frozen=True, slots=True)
class ArrivalSchedule:
    """Intended send times as offsets (seconds) from the start of the stage.

    Offsets are absolute: the executor sleeps until ``t0 + offsets[i]``, so lateness of
    one request never shifts the next.  They are either ``listed`` or generated lazily by
    ``source`` (``start``, ``start + step``, ...: a shard's share, lens.plan.split);
    ``iter(schedule)`` walks them in O(1) memory, ``offsets_s`` lists them all.
    """

    listed: tuple[float, ...] = ()
    # What the offsets were drawn from, for people reading the plan; the executor only
    # reads the offsets.
    process: ArrivalProcess = "uniform"
    burstiness: float | None = None  # gamma shape k
    seed: int | None = None  # the scenario's seed, for a random process
    rate_per_s: tuple[float, float] | None = None  # intended rate at start and end
    source: OffsetSource | None = None
    start: int = 0
    step: int = 1

    def __iter__(self) -> Iterator[float]:
        if self.source is None:
            return iter(self.listed)
        return itertools.islice(self.source, self.start, None, self.step)

    @property
    def offsets_s(self) -> tuple[float, ...]:
        """Every offset, listed: O(arrivals) memory, for tests and small plans."""
        return self.listed if self.source is None else tuple(self)

    def stride(self, index: int, count: int) -> ArrivalSchedule:
        """Arrivals ``index``, ``index + count``, ... of this schedule."""
        if self.source is None:
            return replace(self, listed=self.listed[index::count])
        return replace(self, start=self.start + index * self.step, step=self.step * count)

    def offset(self, i: int) -> float:
        """The offset of arrival ``i`` of this schedule."""
        if self.source is None:
            return self.listed[i]
        return self.source.offset(self.start + i * self.step)

    def index_at(self, t: float) -> int:
        """How many offsets are below ``t`` (bisect_left): by bisection when offsets can be
        indexed cheaply, else by walking (O(1) memory)."""
        if self.source is None:
            return bisect.bisect_left(self.listed, t)
        if self.source.random_access:
            return bisect.bisect_left(range(self.count), t, key=self.offset)
        return sum(1 for _ in itertools.takewhile(lambda o: o < t, self))

    @property
    def count(self) -> int:
        if self.source is None:
            return len(self.listed)
        return self.source.summary(self.start, self.step)[0]

    @property
    def last_s(self) -> float:
        """The last offset (0.0 for an empty schedule)."""
        if self.source is None:
            return self.listed[-1] if self.listed else 0.0
        n, _, last = self.source.summary(self.start, self.step)
        return last if n else 0.0

    @property
    def span_s(self) -> float:
        if self.source is None:
            return self.listed[-1] - self.listed[0] if self.listed else 0.0
        n, first, last = self.source.summary(self.start, self.step)
        return last - first if n else 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to send a failed request again. Each attempt is recorded and counted."""

    max_retries: int
    on: frozenset[str]  # error class values
    backoff_s: float
    max_wait_s: float

    def wait_s(self, retry: int, retry_after_s: float | None) -> float:
        """The pause before retry number ``retry`` (1-based): the server's hint if any."""
        wait = retry_after_s if retry_after_s is not None else self.backoff_s * 2 ** (retry - 1)
        return min(max(wait, 0.0), self.max_wait_s)


@dataclass(frozen=True, slots=True)
class Phases:
    """Which requests of a unit are warmup or cooldown.

    By index (the first ``warmup_requests``; from ``cooldown_from_index`` on) or by when a
    request is due or started, in seconds from the unit's start (before ``warmup_s``; from
    ``cooldown_from_s`` on).  Open-loop units are resolved to indices when the plan is
    compiled, since their offsets are known; closed-loop ones may keep seconds.
    """

    warmup_requests: int = 0
    warmup_s: float = 0.0
    cooldown_from_index: int | None = None
    cooldown_from_s: float | None = None
    pooled: bool = False  # sla_includes_warmup: judged with the measured requests

    def phase_of(self, index: int, offset_s: float) -> Phase:
        if index < self.warmup_requests or offset_s < self.warmup_s:
            return "warmup"
        if (self.cooldown_from_index is not None and index >= self.cooldown_from_index) or (
            self.cooldown_from_s is not None and offset_s >= self.cooldown_from_s
        ):
            return "cooldown"
        return "measure"

    @property
    def any(self) -> bool:
        return bool(self.warmup_requests or self.warmup_s) or (
            self.cooldown_from_index is not None or self.cooldown_from_s is not None
        )


DrainPolicy = Literal["wait", "cancel"]


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """Requests sent at planned times whatever the server does: burst, constant-rate, ramp
    and the rate steps of a sweep."""

    arrivals: ArrivalSchedule
    # A cap on requests in flight (None: none), acquired after each intended time, so a
    # wait for it is dispatch lag.
    max_concurrency: int | None = None
    # A shard's part of a schedule (lens.plan.split): its arrival i is the plan's arrival
    # first_index + i * index_step, whose index (prompt, phase, record) it keeps.
    first_index: int = 0
    index_step: int = 1

    def plan_index(self, i: int) -> int:
        return self.first_index + i * self.index_step


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    """``concurrency`` clients, each sending its next request when its previous one ended:
    the concurrency pattern and the concurrency steps of a sweep.  It stops after
    ``requests`` requests, or starts none after ``duration_s``, whichever comes first (at
    least one of the two is set)."""

    concurrency: int
    requests: int | None = None
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class IdleProbe:
    """One request, then one more after each idle gap, counted from the end of the one
    before: nothing is in flight while the provider idles."""

    gaps_s: tuple[float, ...]

    @property
    def requests(self) -> int:
        return len(self.gaps_s) + 1


Load = OpenLoop | ClosedLoop | IdleProbe


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One stage against one provider: its own full schedule."""

    stage: str
    provider: str
    pattern: PatternName
    prompts: tuple[str, ...]  # prompt id of request i is prompts[i % len(prompts)]
    timeout_s: float
    max_tokens: int | None
    load: Load
    retries: RetryPolicy | None = None  # None: a failure is final (no hidden retries)
    sweep: SweepStep | None = None
    pause_before_s: float = 0.0  # idle time before the unit starts, outside its window
    phases: Phases = Phases()
    drain: DrainPolicy = "wait"
    drain_timeout_s: float | None = None
    # The planned end, in seconds from the unit's start: the stage's duration, else (None)
    # when its last request is sent.  Requests still in flight then are drained.
    cutoff_s: float | None = None
    # Open loop: wake this long before each arrival and spin through the rest, because the
    # event loop's timers (epoll, millisecond timeouts rounded up) wake up to 1 ms late.
    spin_s: float = 0.0
    # A repeated stage's unit (``repeat: N``): which repetition; ``stage`` is its own id.
    repetition: Repetition | None = None
    # The provider's body: with the stage's merged over it (prompt bodies go over both).
    body: Mapping[str, Any] = field(default_factory=dict)
    # pattern: trace: the rows the unit replays; request i sends row i (``prompts`` is
    # empty: the rows' prompts are made when sent, lens.plan.trace).
    trace: TraceSource | None = None

    @property
    def drain_grace_s(self) -> float | None:
        """How long requests in flight may run past the cutoff (None: as long as they take)."""
        if self.drain == "cancel":
            return self.drain_timeout_s or 0.0
        return self.drain_timeout_s

    @property
    def planned_requests(self) -> int | None:
        """Requests the unit sends if nothing stops it; None: as many as its duration takes."""
        match self.load:
            case OpenLoop(arrivals=arrivals):
                return arrivals.count
            case ClosedLoop(requests=requests):
                return requests
            case IdleProbe() as probe:
                return probe.requests

    def prompt_for(self, index: int) -> str:
        if self.trace is not None:
            return self.trace.prompt_id(index)
        return self.prompts[index % len(self.prompts)]


@dataclass(frozen=True, slots=True)
class SlaSpec:
    expr: SlaExpr
    provider: str | None = None
    stage: str | None = None
    where: str = ""  # file:line:col of the assertion, for messages
    # Stage ids of the units ``stage`` expands into: a sweep's steps, or the repetitions of
    # a repeated stage (judged pooled, under the stage's own id; see lens.metrics.judge).
    steps: tuple[str, ...] = ()
    window_s: float | None = None  # judged per window of this length (lens.metrics.windows)
    allow: int = 0  # windows that may fail
    stop_on_fail: bool = False  # end the run once it has conclusively failed

    def covers(self, stage: str) -> bool:
        """Whether the scope takes in the stage unit ``stage`` (a sweep: all its steps; a
        repeated stage: its repetitions)."""
        return self.stage is None or stage == self.stage or stage in self.steps

    def applies_to(self, stage: str, provider: str) -> bool:
        """Whether this assertion judges the ``stage`` x ``provider`` run."""
        return (self.provider is None or self.provider == provider) and self.covers(stage)

    @property
    def scope(self) -> str:
        parts = [f"provider={self.provider}" if self.provider else ""]
        parts.append(f"stage={self.stage}" if self.stage else "")
        return " ".join(p for p in parts if p) or "all"


SweepKind = Literal["stop_when", "find_max_rate", "find_max_concurrency", "auto"]
PacedArrival = Literal["uniform", "poisson", "gamma"]


@dataclass(frozen=True, slots=True)
class RateStepLoad:
    """How to draw the schedule of a rate step chosen at run time: the sweep's settings."""

    duration_s: float | None
    requests: int | None
    process: PacedArrival = "uniform"
    burstiness: float = 1.0
    seed: int = 0
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class AdaptiveSweep:
    """A sweep whose steps depend on the judged summaries of the steps before.

    ``Plan.stages`` lists the steps known before the run: every step of a ``stop_when``
    sweep (some may be skipped), the two bounds of ``find_max_rate`` and
    ``find_max_concurrency``, the synchronous and saturation steps of ``auto``.  The rest are
    decided at run time, one step at a time.
    """

    sweep: str  # the sweep stage's id
    kind: SweepKind
    # stop_when: the sweep ends at the first step where any holds; find_max_rate and
    # find_max_concurrency: a step passes when every one passes.
    conditions: tuple[SlaSpec, ...] = ()
    load: RateStepLoad | None = None  # rate steps chosen at run time
    pause_s: float = 0.0  # before each step after the first
    search_range: tuple[float, float] | None = None  # find_max_rate: (from, to) per second
    precision: Precision | None = None  # find_max_rate
    max_steps: int | None = None  # a search: probes, both bounds included
    concurrency_range: tuple[int, int] | None = None  # find_max_concurrency: (from, to)
    # find_max_concurrency: stop when the lowest failing is at most this above the highest
    # passing concurrency (1: neighbours, the exact edge).
    concurrency_precision: int = 1
    auto_steps: int | None = None  # auto: rate steps between the two measured throughputs


@dataclass(frozen=True, slots=True)
class IntegritySettings:
    max_loop_lag_ms: float = 25.0
    max_cpu: float = 0.9  # share of one core
    cold_after_s: float = 60.0
    buffered_share: float = 0.5


@dataclass(frozen=True, slots=True)
class EnvRead:
    """An environment variable the plan was built from: its name, never its value."""

    name: str
    field: str  # where it was read, e.g. providers.local.api_key
    default: bool = False  # lens's own default for the field (no ${VAR} written)


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """A scenario ``export:`` entry; ``lens run`` adds its ``--export`` flags to these."""

    kind: str
    dest: Secret  # may carry a token; its source is the masked destination, safe to print
    where: str = ""  # file:line:col of the entry, for messages


# A baseline read from Git without a checkout: "git:REF:PATH", as `git show REF:PATH`.
GIT_BASELINE_PREFIX = "git:"


@dataclass(frozen=True, slots=True)
class RegressionSpec:
    """The scenario's ``regression:`` block: a baseline to compare each run with, and the
    thresholds that replace lens compare's defaults for the statistics they name."""

    baseline: str | None  # a path (absolute once compiled) or "git:REF:PATH"; None: --baseline
    base_dir: str = "."  # the scenario's folder: where `git show` runs for a git: baseline
    thresholds: tuple[tuple[str, Threshold], ...] = ()  # (METRIC.STAT, threshold), as written
    where: str = ""  # file:line:col of the block


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    description: str
    source: str  # path of the scenario file
    providers: Mapping[str, ProviderSpec]
    prompts: Mapping[str, PromptSpec]
    stages: tuple[StagePlan, ...]
    slas: tuple[SlaSpec, ...]
    scenario_version: int = 1
    budget_usd: Decimal | None = None  # stop scheduling before spending could pass it
    warnings: tuple[str, ...] = ()  # things worth saying that do not stop the run
    integrity: IntegritySettings = IntegritySettings()
    exports: tuple[ExportSpec, ...] = ()
    sweeps: tuple[AdaptiveSweep, ...] = ()  # sweeps whose steps are decided at run time
    limits: Limits = Limits()
    environment: tuple[EnvRead, ...] = ()  # every variable read, in file order
    regression: RegressionSpec | None = None
    # Per-request records results.json lists: None all, else an evenly spaced sample of
    # this many (scenario ``results: {records: ...}``, ``lens run --results-records``).
    results_records: int | None = None
    # ``results_records`` is lens's default limit (DEFAULT_RESULTS_RECORDS), not the user's
    # choice: a sample it takes is warned about, and a shard keeps all (lens merge needs them).
    results_records_default: bool = False
    # defaults.workers: processes that run the plan (lens.workers); "auto" resolved there.
    workers: int | Literal["auto"] = 1
    # What each prompt entry of the scenario yields, and the tokenizer that counted them.
    prompt_sources: tuple[PromptSource, ...] = ()
    tokenizer: str = "estimate"
    # tokenizer: server: the pre-flight's calls (planned in lens plan, made in lens run).
    tokenizer_preflight: TokenizerPreflight | None = None
