"""``tokenizer: server``: the provider's own ``/tokenize`` endpoint counts tokens.

Counting through the server sends requests, and lens sends none at ``lens plan`` and none
of its own during a measurement.  So the server is asked in a **pre-flight** of ``lens
run``: the scenario is loaded and compiled inside ``server_preflight()``, before the run
clock starts, on its own connection, and the plan the run executes is the one built from
the server's counts.  Everywhere else (``lens validate``, ``lens plan``) a server tokenizer
is lens's estimate under another name (``ServerEstimate``), which also counts the calls the
pre-flight will make, so the plan can say so.

Two wire formats (``tokenizer: {server: llamacpp | vllm}``; ``server`` alone detects):

* llama.cpp ``llama-server``: ``POST /tokenize {"content"}`` → ``{"tokens": [ids]}``,
  ``POST /detokenize {"tokens"}`` → ``{"content"}``;
* vLLM: ``POST /tokenize {"model", "prompt", "add_special_tokens": false}`` →
  ``{"count", "tokens", "max_model_len"}``, ``POST /detokenize {"model", "tokens"}`` →
  ``{"prompt"}``.

Detection sends the llama.cpp form first: a response with a ``tokens`` list is llama.cpp;
a 4xx (vLLM rejects a body without ``prompt``) is retried once in vLLM's form, and the
flavour that answered is kept for every later call.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from lens.errors import InputError
from lens.scenario.tokenizers import (
    WORDS,
    EstimateTokenizer,
    TokenizerError,
    _OffsetTokenizer,
    word_text,
)

Flavour = Literal["auto", "llamacpp", "vllm"]
# Rounds of detokenize-cut-recount before lens gives up on an exact length.
_CUT_ROUNDS = 8


class PreflightError(InputError):
    """The server's tokenize endpoint could not count (down, 404, a wrong reply): the run
    cannot build its exact-length prompts, so nothing is sent (exit 2)."""


def origin_of(base_url: str) -> str:
    """``scheme://host:port`` of a provider's base URL: both servers serve ``/tokenize``
    at the root, beside ``/v1``."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(slots=True)
class ServerTarget:
    """Where one server tokenizer counts: its provider, origin, model and flavour."""

    provider: str
    origin: str
    model: str
    flavour: Flavour = "auto"
    api_key: str | None = field(default=None, repr=False)


def unit_check_calls() -> int:
    """Tokenize calls the pre-flight spends finding the one-token words (one a word, and
    one for the check that they join exactly)."""
    return len(WORDS) + 1


class ServerEstimate(EstimateTokenizer):
    """A server tokenizer outside ``lens run``'s pre-flight: lens's estimate, named for
    the server, counting the tokenize calls the pre-flight will make instead."""

    def __init__(self, target: ServerTarget) -> None:
        self.target = target
        self.name = f"server:{target.provider} (estimated; counted by the server at lens run)"
        self.planned_counts = 0  # texts the pre-flight will count one call each
        self.planned_texts = 0  # synthetic texts it will make (no call when words join)

    def count(self, text: str) -> int:
        self.planned_counts += 1
        return super().count(text)

    def text_of_length(self, tokens: int, seed: int) -> str:
        self.planned_texts += 1
        return super().text_of_length(tokens, seed)

    def planned_calls(self) -> int:
        """Tokenize calls the pre-flight makes when the server's vocabulary joins lens's
        words exactly (the usual case); a text it must cut costs up to
        ``2 + 2 * rounds`` more."""
        return (unit_check_calls() if self.planned_texts else 0) + self.planned_counts

    def __reduce__(self) -> tuple[Any, ...]:
        return (ServerEstimate, (self.target,))


class ServerTokenizer(_OffsetTokenizer):
    """Counts by the server's ``/tokenize`` while its pre-flight is open; afterwards (in
    the plan the run executes, and in worker processes) it keeps what it learnt (the
    one-token words) and makes no call: a text it would have to ask the server for is an
    error, never a request during the measurement."""

    def __init__(self, target: ServerTarget, session: PreflightSession | None) -> None:
        self.target = target
        self.name = f"server:{target.provider}"
        self._session = session
        self._flavour: Flavour = target.flavour

    # -- the wire -----------------------------------------------------------------------

    def _client(self) -> PreflightSession:
        session = self._session
        if session is None or session.closed:
            raise TokenizerError(
                f"tokenizer {self.name} is asked to count after its pre-flight ended (lens "
                "never calls /tokenize during a run): this text needs the server"
            )
        return session

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        return self._client().post(self.target, path, body)

    def tokenize(self, text: str) -> list[int]:
        """The server's token ids of ``text`` (no special tokens)."""
        if self._flavour == "vllm":
            return self._vllm_tokens(text)
        llama_body = {"content": text, "add_special": False}
        response = self._post("/tokenize", llama_body)
        if self._flavour == "auto" and 400 <= response[0] < 500:
            ids = self._vllm_tokens(text)  # raises when vLLM's form fails too
            self._flavour = "vllm"
            return ids
        ids = self._ids(response, "/tokenize", "tokens")
        if self._flavour == "auto":
            self._flavour = "llamacpp"
        return ids

    def _vllm_tokens(self, text: str) -> list[int]:
        body = {"model": self.target.model, "prompt": text, "add_special_tokens": False}
        return self._ids(self._post("/tokenize", body), "/tokenize", "tokens")

    def detokenize(self, ids: Sequence[int]) -> str:
        if self._flavour == "auto":
            self.tokenize("lens")  # settles the flavour
        if self._flavour == "vllm":
            body: dict[str, Any] = {"model": self.target.model, "tokens": list(ids)}
            key = "prompt"
        else:
            body, key = {"tokens": list(ids)}, "content"
        doc = self._json(self._post("/detokenize", body), "/detokenize")
        text = doc.get(key)
        if not isinstance(text, str):
            raise self._wrong("/detokenize", f"no {key!r} text in the reply")
        return text

    def _json(self, response: tuple[int, bytes], path: str) -> dict[str, Any]:
        status, body = response
        if status != 200:
            raise self._wrong(path, f"HTTP {status}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise self._wrong(path, "the reply is not JSON") from None
        if not isinstance(doc, dict):
            raise self._wrong(path, "the reply is not a JSON object")
        return doc

    def _ids(self, response: tuple[int, bytes], path: str, key: str) -> list[int]:
        ids = self._json(response, path).get(key)
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise self._wrong(path, f"no {key!r} list of token ids in the reply")
        return ids

    def _wrong(self, path: str, what: str) -> PreflightError:
        return PreflightError(
            f"tokenizer: server ({self.target.provider}): POST {self.target.origin}{path} "
            f"cannot count tokens: {what} (is it llama.cpp's or vLLM's server? "
            "tokenizer: {server: llamacpp | vllm} names the format)"
        )

    # -- Tokenizer ----------------------------------------------------------------------

    def count(self, text: str) -> int:
        return len(self.tokenize(text)) if text else 0

    def unit_words(self) -> tuple[str, ...]:
        # One call a word: "w w w" counting 3 means "w" and " w" are one token each.
        if self._unit is None:
            self._unit = tuple(w for w in WORDS if self.count(f"{w} {w} {w}") == 3)
        return self._unit

    def _ends(self, text: str) -> list[int]:  # pragma: no cover - _cut_to_length is ours
        raise NotImplementedError

    def _cut_to_length(self, tokens: int, seed: int) -> str:
        """Seeded text tokenized once; its first ``tokens`` ids detokenized, the text
        recounted, and the cut moved by the difference until the count agrees."""
        chars = tokens * 8 + 64
        ids = self.tokenize(word_text(chars, seed))
        while len(ids) < tokens + 8:  # a tokenizer of very long tokens: more text
            chars *= 4
            ids = self.tokenize(word_text(chars, seed))
        k = tokens
        seen: set[int] = set()
        for _ in range(_CUT_ROUNDS):
            # As detokenized (a SentencePiece server may add a leading space): the recount
            # is what says whether it is exact.
            text = self.detokenize(ids[:k])
            got = self.count(text)
            if got == tokens:
                return text
            seen.add(k)
            k = min(max(1, k + tokens - got), len(ids))
            if k in seen:
                k = min(max(1, k + (1 if got < tokens else -1)), len(ids))
                if k in seen:
                    break
        raise TokenizerError(
            f"tokenizer {self.name} cannot make a text of exactly {tokens} tokens: the "
            "server's count of a detokenized cut keeps disagreeing with the cut"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Worker processes get what the pre-flight learnt, and no connection.
        return (_frozen_server, (self.target, self._unit, self._additive, self._flavour))


def _frozen_server(
    target: ServerTarget,
    unit: tuple[str, ...] | None,
    additive: bool | None,
    flavour: Flavour,
) -> ServerTokenizer:
    tokenizer = ServerTokenizer(target, None)
    tokenizer._unit, tokenizer._additive, tokenizer._flavour = unit, additive, flavour
    return tokenizer


class Transport(Protocol):
    """What sends the pre-flight's requests (lens.run.tokenize_http: one httpx client per
    origin); raises ``PreflightError`` when a request gets no reply."""

    def post(self, target: ServerTarget, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """POST ``body`` as JSON to ``target.origin + path``: the status and the body."""

    def close(self) -> None:
        """Close its connections."""


@dataclass(slots=True)
class PreflightSession:
    """One pre-flight: its transport, the calls made and the time spent."""

    transport: Transport
    calls: int = 0
    seconds: float = 0.0
    closed: bool = False
    tokenizers: list[ServerTokenizer] = field(default_factory=list)

    def tokenizer(self, target: ServerTarget) -> ServerTokenizer:
        made = ServerTokenizer(target, self)
        self.tokenizers.append(made)
        return made

    def post(self, target: ServerTarget, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        started = time.perf_counter()
        try:
            return self.transport.post(target, path, body)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.closed = True
        self.transport.close()


_SESSION: contextvars.ContextVar[PreflightSession | None] = contextvars.ContextVar(
    "lens_tokenizer_preflight", default=None
)


def current_session() -> PreflightSession | None:
    return _SESSION.get()


@contextmanager
def server_preflight(transport: Transport) -> Iterator[PreflightSession]:
    """Inside it, ``tokenizer: server`` counts by the server through ``transport`` (``lens
    run`` loads and compiles its scenario in here, before anything is measured); the
    connections close when it ends, and the tokenizers made in it never call again."""
    session = PreflightSession(transport)
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)
        session.close()


def learnt_before_closing(session: PreflightSession, makes_texts_later: bool) -> None:
    """Before the pre-flight closes: each server tokenizer learns its one-token words (so
    worker processes and trace replays, which make texts as they send, need no call).  A
    replay whose texts would need the server during the run is refused here."""
    for tokenizer in session.tokenizers:
        if not makes_texts_later:
            continue
        if not tokenizer.joins_exactly():
            raise PreflightError(
                f"tokenizer {tokenizer.name}: a trace replay makes its texts as it sends, and "
                "this server's vocabulary does not count lens's words one token each, so "
                "they would need /tokenize during the run: use tokenizer: {hf: PATH} with "
                "the model's tokenizer.json for trace stages"
            )
