"""Prompts: literal messages, synthetic text and prompt files, and their tagged union."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, PrivateAttr, Tag, model_validator

from lens.scenario.model.base import FieldError, FrozenModel, Ident, NonEmptyStr, PositiveInt
from lens.scenario.model.workloads import (
    MAX_SYNTHETIC_PROMPTS,
    Body,
    ConversationSpec,
    DatasetSpec,
    Length,
    LengthDist,
    SessionOptions,
    body_field,
)


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
    body: Body = body_field()


class SyntheticSpec(FrozenModel):
    input_tokens: Length = Field(
        description="Prompt length in tokens (exact with the scenario's tokenizer), or a "
        "distribution {dist, mean, stdev, min, max} drawn per prompt."
    )
    output_tokens: Length = Field(
        description="max_tokens sent with the request, or a distribution drawn per prompt."
    )
    seed: int = Field(0, strict=True, description="Seed of the generated text and the draws.")
    count: PositiveInt | None = Field(
        None,
        le=MAX_SYNTHETIC_PROMPTS,
        description="Distinct prompts to generate (default 1 for fixed lengths, 100 when "
        "a length is a distribution).",
    )

    @property
    def prompts(self) -> int:
        """How many distinct prompts this spec yields."""
        if self.count is not None:
            return self.count
        drawn = isinstance(self.input_tokens, LengthDist) or isinstance(
            self.output_tokens, LengthDist
        )
        return 100 if drawn else 1


class SyntheticPrompt(FrozenModel):
    """Generated text of a given length: deterministic for a seed."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    synthetic: SyntheticSpec = Field(description="Length and seed of the generated prompt.")
    body: Body = body_field()


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
    body: Body = body_field()
    # Filled by the loader, which reads the file; not part of the YAML contract.
    _requests: tuple[FileRequest, ...] = PrivateAttr(default=())

    @property
    def requests(self) -> tuple[FileRequest, ...]:
        return self._requests


@dataclass(frozen=True, slots=True)
class DatasetRequest:
    """One prompt taken from a dataset: where it came from (``file:line`` or
    ``file[item]``), its id suffix, messages, input tokens (the scenario's tokenizer) and the
    reference answer's tokens (None: the record has none).  ``turns: all``: the
    conversation's user turns (the first is the last of ``messages``) and the reply after
    each (None: the dataset has none, the last turn's only)."""

    key: str
    where: str
    messages: tuple[ChatMessage, ...]
    input_tokens: int
    reference_tokens: int | None
    turns: tuple[str, ...] = ()
    replies: tuple[str | None, ...] = ()


class ConversationPrompt(FrozenModel):
    """A multi-turn conversation written inline: each turn is its own request, sent with the
    history so far, after a think time."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    conversation: ConversationSpec = Field(description="The turns and how they follow.")
    max_tokens: PositiveInt | None = Field(
        None, description="Output token limit of every turn (overrides the stage's)."
    )
    body: Body = body_field()


class DatasetPrompt(FrozenModel):
    """Prompts sampled from a dataset file: ShareGPT, OpenAI chat JSONL, text lines, CSV,
    Parquet or a local Hugging Face dataset."""

    id: Ident = _prompt_id()
    weight: int = _weight()
    dataset: DatasetSpec = Field(description="The dataset, its format and how to sample it.")
    conversation: SessionOptions | None = Field(
        None,
        description="With turns: all: think time, carry and seed of the conversations "
        "(default: no think time, carry responses).",
    )
    body: Body = body_field()

    @model_validator(mode="after")
    def _sessions(self) -> DatasetPrompt:
        if self.conversation is not None and self.dataset.turns != "all":
            raise FieldError(
                "conversation: applies to whole conversations: set the dataset's turns: all",
                "conversation",
            )
        return self

    @property
    def session_options(self) -> SessionOptions | None:
        """How the conversations run (``turns: all``); None: single prompts."""
        if self.dataset.turns != "all":
            return None
        return self.conversation or SessionOptions.model_validate({})

    # Filled by the loader, which reads and samples the dataset.
    _requests: tuple[DatasetRequest, ...] = PrivateAttr(default=())
    _records: int = PrivateAttr(default=0)  # prompts the file held before filter and sample
    _skipped: int = PrivateAttr(default=0)  # records with no user turn
    _passed: int = PrivateAttr(default=0)  # prompts within the length filter

    @property
    def requests(self) -> tuple[DatasetRequest, ...]:
        return self._requests

    @property
    def records(self) -> int:
        return self._records

    @property
    def skipped(self) -> int:
        return self._skipped

    @property
    def passed(self) -> int:
        return self._passed


PROMPT_KINDS: tuple[str, ...] = ("messages", "synthetic", "file", "dataset", "conversation")
_KIND_OF_CLASS: dict[type[BaseModel], str] = {
    MessagesPrompt: "messages",
    SyntheticPrompt: "synthetic",
    FilePrompt: "file",
    DatasetPrompt: "dataset",
    ConversationPrompt: "conversation",
}


def _prompt_kind(value: Any) -> str | None:
    """The tag of a prompt: the one of messages/synthetic/file it has (None: not exactly one)."""
    if isinstance(value, dict):
        kinds = [k for k in PROMPT_KINDS if k in value]
        if kinds == ["dataset", "conversation"]:
            return "dataset"  # a dataset's conversations: how they run
        return kinds[0] if len(kinds) == 1 else None
    return _KIND_OF_CLASS.get(type(value))


Prompt = Annotated[
    Annotated[MessagesPrompt, Tag("messages")]
    | Annotated[SyntheticPrompt, Tag("synthetic")]
    | Annotated[FilePrompt, Tag("file")]
    | Annotated[DatasetPrompt, Tag("dataset")]
    | Annotated[ConversationPrompt, Tag("conversation")],
    Discriminator(
        _prompt_kind,
        custom_error_type="prompt_kind",
        custom_error_message="a prompt needs exactly one of 'messages', 'synthetic', 'file', "
        "'dataset' or 'conversation'",
    ),
]
