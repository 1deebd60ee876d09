"""Workload shapes: tokenizers, length distributions, datasets and extra request fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from lens.scenario.model.base import Duration, FieldError, FrozenModel, NonEmptyStr, PositiveInt
from lens.scenario.units import show

# --- tokenizer: ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenizerRef:
    """What ``tokenizer:`` names: ``estimate``, ``server``, ``{server: FLAVOUR, provider:
    ID}``, ``{hf: PATH}`` or ``{tiktoken: ENCODING}`` (``value`` is the path, the encoding,
    or the server's flavour: auto, llamacpp or vllm)."""

    kind: Literal["estimate", "server", "hf", "tiktoken"]
    value: str = ""
    provider: str = ""  # server: whose server counts ("": the scenario's only one)

    def as_spec(self) -> str | dict[str, str]:
        return self.kind if self.kind in ("estimate", "server") else {self.kind: self.value}


_TOKENIZER_EXPECTED = (
    "expected estimate, server, {server: auto | llamacpp | vllm, provider: ID}, "
    "{hf: PATH} (a local tokenizer.json or model folder) or {tiktoken: ENCODING}"
)
SERVER_FLAVOURS = ("auto", "llamacpp", "vllm")


def _tokenizer(value: Any) -> TokenizerRef:
    if isinstance(value, TokenizerRef):
        return value
    if value in ("estimate", "server"):
        return TokenizerRef(value, "auto" if value == "server" else "")
    if isinstance(value, dict) and "server" in value and set(value) <= {"server", "provider"}:
        flavour, provider = value["server"], value.get("provider", "")
        if flavour in SERVER_FLAVOURS and isinstance(provider, str):
            return TokenizerRef("server", flavour, provider)
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("hf", "tiktoken") and isinstance(inner, str) and inner:
            return TokenizerRef(key, inner)
    raise ValueError(f"{_TOKENIZER_EXPECTED}, got {show(value)}")


TOKENIZER_DESCRIPTION = (
    "How lens counts tokens: estimate (about 4 characters per token, the default), "
    "{hf: PATH} (a local tokenizer.json or model folder, through the tokenizers library), "
    "{tiktoken: ENCODING} (a tiktoken encoding cached locally), server or {server: auto | "
    "llamacpp | vllm, provider: ID} (the openai-compatible provider's own /tokenize, asked "
    "in a pre-flight of lens run before anything is measured). Used for exact synthetic "
    "lengths, dataset length filters, and output tokens when the server reports no usage."
)
TokenizerSpec = Annotated[
    TokenizerRef,
    BeforeValidator(_tokenizer),
    WithJsonSchema(
        {
            "description": TOKENIZER_DESCRIPTION,
            "oneOf": [
                {"enum": ["estimate", "server"]},
                {
                    "type": "object",
                    "properties": {
                        "server": {"enum": list(SERVER_FLAVOURS)},
                        "provider": {"type": "string", "minLength": 1},
                    },
                    "required": ["server"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"hf": {"type": "string", "minLength": 1}},
                    "required": ["hf"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"tiktoken": {"type": "string", "minLength": 1}},
                    "required": ["tiktoken"],
                    "additionalProperties": False,
                },
            ],
        }
    ),
]

# --- body: -----------------------------------------------------------------------------------

# Request fields lens writes itself: a body: that set them would change what lens measures
# (stream), whom it asks (model), what it sends (messages, input, contents, system, prompt) or
# the output limit it reports and prices (the max_tokens settings).
OWNED_BODY_FIELDS: dict[str, str] = {
    "model": "the provider's model:",
    "messages": "the prompt",
    "input": "the prompt",
    "contents": "the prompt",
    "system": "the prompt's system messages",
    "prompt": "the prompt",
    "stream": "the provider's stream:",
    "max_tokens": "max_tokens: (defaults, stage or prompt)",
    "max_completion_tokens": "max_tokens: with the provider's max_tokens_field",
    "max_output_tokens": "max_tokens: (defaults, stage or prompt)",
}


# Output limits nested in a provider's request: Bedrock Converse's and Gemini's.
_NESTED_LIMITS = (
    ("inferenceConfig", "maxTokens", "max_tokens: (defaults, stage or prompt)"),
    ("generationConfig", "maxOutputTokens", "max_tokens: (defaults, stage or prompt)"),
)


def _body(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of request fields, got {show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"request field names are strings, got {show(key)}")
        if key in OWNED_BODY_FIELDS:
            raise ValueError(f"{key!r} is set by lens ({OWNED_BODY_FIELDS[key]})")
    for parent, child, owner in _NESTED_LIMITS:
        nested = value.get(parent)
        if isinstance(nested, dict) and child in nested:
            raise ValueError(f"'{parent}.{child}' is set by lens ({owner})")
    options = value.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options:
        raise ValueError(
            "stream_options.include_usage is set by lens: use the provider's include_usage:"
        )
    return value


BODY_DESCRIPTION = (
    "Extra fields deep-merged into each request body (temperature, top_p, seed, vLLM's "
    "ignore_eos ...). Precedence: prompt > stage > provider. Fields lens writes (model, "
    "messages, stream, max_tokens ...) are refused."
)
Body = Annotated[
    dict[str, Any],
    BeforeValidator(_body),
    WithJsonSchema({"type": "object", "description": BODY_DESCRIPTION}),
]


def body_field() -> Any:
    return Field(default_factory=dict, description=BODY_DESCRIPTION)


# --- length distributions ---------------------------------------------------------------------

MAX_TOKENS_DRAWN = 1_000_000  # a drawn length past this is a typo, not a prompt


class LengthDist(FrozenModel):
    """A distribution of token lengths, drawn once per prompt with the prompt's seed."""

    dist: Literal["normal", "lognormal", "uniform", "fixed"] = Field(
        description="normal / lognormal (mean, stdev), uniform (min, max) or fixed (mean)."
    )
    mean: float | None = Field(None, gt=0, description="Mean length in tokens.")
    stdev: float | None = Field(None, ge=0, description="Standard deviation in tokens.")
    min: PositiveInt | None = Field(
        None, description="Lowest length (draws below are drawn again; uniform: its low end)."
    )
    max: PositiveInt | None = Field(
        None,
        le=MAX_TOKENS_DRAWN,
        description="Highest length (draws above are drawn again; uniform: its high end).",
    )

    @model_validator(mode="after")
    def _complete(self) -> LengthDist:
        needs = {
            "normal": ("mean", "stdev"),
            "lognormal": ("mean", "stdev"),
            "uniform": ("min", "max"),
            "fixed": ("mean",),
        }[self.dist]
        for key in needs:
            if getattr(self, key) is None:
                raise FieldError(f"dist: {self.dist} needs {' and '.join(needs)}", key)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldError(f"min {self.min} is above max {self.max}", "min")
        return self


Length = PositiveInt | LengthDist
MAX_SYNTHETIC_PROMPTS = 100_000

# --- dataset: ---------------------------------------------------------------------------------

DatasetFormat = Literal["sharegpt", "openai-chat-jsonl", "text-lines", "csv", "parquet", "hf"]
CONVERSATION_FORMATS = ("sharegpt", "openai-chat-jsonl")  # the formats turns: all reads


class DatasetFilter(FrozenModel):
    min_input_tokens: PositiveInt | None = Field(
        None, description="Drop prompts shorter than this (counted by the scenario's tokenizer)."
    )
    max_input_tokens: PositiveInt | None = Field(
        None, description="Drop prompts longer than this (counted by the scenario's tokenizer)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DatasetFilter:
        low, high = self.min_input_tokens, self.max_input_tokens
        if low is not None and high is not None and low > high:
            raise FieldError(
                f"min_input_tokens {low} is above max_input_tokens {high}", "min_input_tokens"
            )
        return self


class DatasetSpec(FrozenModel):
    """A file (or local Hugging Face dataset) of prompts, sampled when the scenario loads."""

    path: NonEmptyStr = Field(
        description="File or folder, relative to the scenario (hf: a local dataset folder)."
    )
    format: DatasetFormat = Field(
        description="sharegpt (JSON or JSONL conversations), openai-chat-jsonl ({messages}), "
        "text-lines (one prompt a line), csv, parquet or hf (needs lens[datasets])."
    )
    column: NonEmptyStr | None = Field(
        None,
        description="Where the prompt is: the column (csv, parquet, hf; default prompt) or "
        "the conversation key (sharegpt; default conversations).",
    )
    reference: NonEmptyStr | None = Field(
        None,
        description="Column holding the reference answer (csv, parquet, hf), whose length "
        "output_tokens: from_dataset sends as max_tokens.",
    )
    split: NonEmptyStr = Field("train", description="hf: the split to read.")
    sample: PositiveInt | None = Field(
        None, description="Take N prompts at random, without replacement (default: all)."
    )
    seed: int = Field(0, strict=True, description="Seed of the sample.")
    filter: DatasetFilter | None = Field(None, description="Input-length bounds, in tokens.")
    turns: Literal["first", "all"] = Field(
        "first",
        description="first: each conversation's first user turn (with any system message "
        "before it). all: each conversation as a multi-turn session (sharegpt, "
        "openai-chat-jsonl), with the dataset's replies as references.",
    )
    output_tokens: Literal["from_dataset"] | PositiveInt | None = Field(
        None,
        description="max_tokens sent: a number, or from_dataset (the reference answer's "
        "length, when the record has one; else the stage's).",
    )

    @model_validator(mode="after")
    def _supported(self) -> DatasetSpec:
        if self.turns == "all" and self.format not in CONVERSATION_FORMATS:
            raise FieldError(
                f"turns: all needs conversations: format {self.format} holds one prompt a "
                f"record (use {' or '.join(CONVERSATION_FORMATS)})",
                "turns",
            )
        structural = self.format in ("sharegpt", "openai-chat-jsonl", "text-lines")
        if self.reference is not None and structural:
            raise FieldError(
                f"format {self.format} finds the reference answer itself: remove 'reference'",
                "reference",
            )
        if self.column is not None and self.format in ("openai-chat-jsonl", "text-lines"):
            raise FieldError(f"format {self.format} takes no 'column'", "column")
        return self


# --- conversations ---------------------------------------------------------------------------

MAX_THINK_S = 3600.0  # a think time past an hour is a typo


class ThinkDist(FrozenModel):
    """A distribution of think times (seconds), drawn per turn with the conversation's seed."""

    dist: Literal["fixed", "uniform", "normal", "lognormal", "exponential"] = Field(
        description="fixed (mean), uniform (min, max), normal / lognormal (mean, stdev) or "
        "exponential (mean)."
    )
    mean: Duration | None = Field(None, description="Mean think time.")
    stdev: Duration | None = Field(None, description="Standard deviation.")
    min: Duration | None = Field(
        None, description="Shortest (draws below are drawn again; uniform: its low end)."
    )
    max: Duration | None = Field(
        None, description="Longest (draws above are drawn again; uniform: its high end)."
    )

    @model_validator(mode="after")
    def _complete(self) -> ThinkDist:
        needs = {
            "normal": ("mean", "stdev"),
            "lognormal": ("mean", "stdev"),
            "uniform": ("min", "max"),
            "fixed": ("mean",),
            "exponential": ("mean",),
        }[self.dist]
        for key in needs:
            if getattr(self, key) is None:
                raise FieldError(f"dist: {self.dist} needs {' and '.join(needs)}", key)
        if self.dist == "lognormal" and not self.mean:
            raise FieldError("dist: lognormal needs a mean above zero", "mean")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldError(f"min {self.min:g}s is above max {self.max:g}s", "min")
        for key in ("mean", "max"):
            value = getattr(self, key)
            if value is not None and value > MAX_THINK_S:
                raise FieldError(f"{key} {value:g}s is over an hour", key)
        return self


THINK_TIME_DESCRIPTION = (
    "Wait between the end of a reply and the next turn: a duration (2s) or a distribution "
    "{dist: fixed|uniform|normal|lognormal|exponential, mean, stdev, min, max}, drawn per turn "
    "with the conversation's seed."
)
Carry = Literal["responses", "reference"]
CARRY_DESCRIPTION = (
    "What later turns send as the assistant's earlier replies: responses (the model's own "
    "reply text, as a chat client does) or reference (the dataset's, or replies:, so every "
    "run sends the same history)."
)


class SessionOptions(FrozenModel):
    """How a conversation's turns follow each other (a dataset's ``turns: all``)."""

    think_time: Duration | ThinkDist = Field(0.0, description=THINK_TIME_DESCRIPTION)
    carry: Carry = Field("responses", description=CARRY_DESCRIPTION)
    seed: int = Field(0, strict=True, description="Seed of the think-time draws.")


class ConversationSpec(SessionOptions):
    """A conversation written inline: its user turns, sent one after the other, each with
    the history so far."""

    system: str | None = Field(None, description="A system message sent before every turn.")
    turns: tuple[NonEmptyStr, ...] = Field(
        min_length=1, description="The user messages, one per turn, in order."
    )
    replies: tuple[str, ...] = Field(
        (),
        description="carry: reference: the assistant reply after each turn (at least one "
        "per turn but the last).",
    )

    @model_validator(mode="after")
    def _replies(self) -> ConversationSpec:
        if self.carry == "reference" and len(self.replies) < len(self.turns) - 1:
            raise FieldError(
                f"carry: reference needs a reply after each turn but the last: "
                f"{len(self.turns) - 1} replies, got {len(self.replies)}",
                "replies",
            )
        if self.replies and self.carry != "reference":
            raise FieldError("replies are sent with carry: reference only", "replies")
        return self
