"""Prompts: literal messages, synthetic text and prompt files, and their tagged union."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, PrivateAttr, Tag

from lens.scenario.model.base import FrozenModel, Ident, NonEmptyStr, PositiveInt


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
