"""Token counting: lens's estimate, a Hugging Face ``tokenizer.json``, a tiktoken encoding.

A tokenizer is resolved when the scenario loads (``tokenizer:`` at the top level or per
provider), so a missing file or a missing optional library is reported with the other
scenario problems, and nothing later reads a file or the network.  It serves three things:

* synthetic prompts of an exact input length (``text_of_length``);
* dataset length filters and the plan's length statistics (``count_many``);
* output tokens of a response whose server reported no usage (``token_source: tokenizer``).

Counts are of the text alone (no special tokens, no chat template): a server's
``prompt_tokens`` adds its template's few tokens to the content's count.
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# lens's estimate when no tokenizer is named: about 4 characters per token (the same rule
# as lens.providers.base.estimate_tokens, which counts responses without usage).
CHARS_PER_TOKEN = 4
# Short, common English words: each is one token in the usual BPE vocabularies, so the
# token count a server reports lands near the estimate instead of far above it.
_WORD_LIST = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could "
    "people my than first water been call who oil its now find long down day did get come "
    "made may part"
)
WORDS = tuple(_WORD_LIST.split())
# Adjusting a cut of generated text to an exact count converges in one or two rounds; a
# tokenizer that keeps oscillating is told, not looped on.
_MAX_ROUNDS = 32


class TokenizerError(Exception):
    """A tokenizer that cannot be loaded or cannot do what was asked (an input error)."""


class Tokenizer(ABC):
    """Counts tokens of text; ``name`` says which tokenizer in plans and results."""

    name: str

    @abstractmethod
    def count(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens)."""

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    @abstractmethod
    def text_of_length(self, tokens: int, seed: int) -> str:
        """Deterministic filler of exactly ``tokens`` tokens for ``seed``."""

    # What joins texts of text_of_length into one: a space for real tokenizers (words stay
    # words), nothing for the estimate (characters add up exactly).
    separator = " "

    def joins_exactly(self) -> bool:
        """Whether texts of ``text_of_length`` joined by ``separator`` always count the sum
        of their tokens, so a joined text needs no recount."""
        return False

    def join(self, texts: Sequence[str]) -> str:
        """``texts`` (each made by ``text_of_length``) one after another."""
        return self.separator.join(t for t in texts if t)

    def text_after(self, head: str, total: int, seed: int) -> str:
        """``head`` (texts of ``text_of_length`` joined by ``join``), then a tail of filler
        for ``seed``, exactly ``total`` tokens in all: the head is kept as it is, so texts
        with the same head share it exactly (a shared prefix), and only the tail's length
        is corrected when joining changed the count."""
        if not head:
            return self.text_of_length(total, seed)
        if self.joins_exactly():
            return self.join([head, self.text_of_length(total - self.count_joined(head), seed)])
        tail = max(0, total - self.count(head))
        seen: set[int] = set()
        for _ in range(_MAX_ROUNDS):
            text = self.join([head, self.text_of_length(tail, seed)])
            got = self.count(text)
            if got == total:
                return text
            seen.add(tail)
            tail = max(0, tail + total - got)
            if tail in seen:
                break
        raise TokenizerError(
            f"tokenizer {self.name} cannot make a text of exactly {total} tokens that begins "
            f"with a shared prefix of {self.count(head)} (the prefix alone may be too long)"
        )

    def count_joined(self, head: str) -> int:
        """Tokens of a joined text (cheap when ``joins_exactly``: no tokenizing)."""
        return self.count(head)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name})"

    # Plans are dumped with pydantic: a tokenizer shows as its name.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.is_instance_schema(
            cls,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda t: t.name),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "the tokenizer's name, e.g. hf:tok.json"}


def word_text(chars: int, seed: int) -> str:
    """Words of lens's list drawn by ``random.Random(seed)``, joined by spaces, at least
    ``chars`` characters long (whole words)."""
    rng = random.Random(seed)
    words: list[str] = []
    length = -1
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


class EstimateTokenizer(Tokenizer):
    """About 4 characters per token: lens's default, exact on its own synthetic text and
    within ~15% of real BPE vocabularies on it."""

    name = "estimate"

    def count(self, text: str) -> int:
        chars = len(text)
        return max(1, round(chars / CHARS_PER_TOKEN)) if chars > 0 else 0

    def text_of_length(self, tokens: int, seed: int) -> str:
        """Exactly ``4 * tokens`` characters, so the estimate of it is exactly ``tokens``."""
        target = tokens * CHARS_PER_TOKEN
        text = word_text(target, seed)[:target]
        return text[:-1] + "." if text.endswith(" ") else text

    separator = ""

    def joins_exactly(self) -> bool:
        return True  # 4 characters a token, and texts of 4 * n characters: they add up

    def __reduce__(self) -> tuple[Any, ...]:
        return (EstimateTokenizer, ())


ESTIMATE = EstimateTokenizer()


# Fewer one-token words than this and the text would repeat a handful of words: lens then
# cuts longer text at a token boundary instead.
_MIN_UNIT_WORDS = 8


class _OffsetTokenizer(Tokenizer):
    """A real tokenizer.  Exact synthetic lengths: lens's words that this tokenizer reads as
    one token each, joined by spaces, ``tokens`` of them (one count checks it); for a
    tokenizer with too few such words, generated text cut at a token's end, the cut
    corrected until a recount agrees."""

    _unit: tuple[str, ...] | None = None
    _additive: bool | None = None

    @abstractmethod
    def _ends(self, text: str) -> list[int]:
        """Character offset where each token of ``text`` ends."""

    def unit_words(self) -> tuple[str, ...]:
        """Lens's words that count as one token alone and repeated (cached)."""
        if self._unit is None:
            self._unit = tuple(
                w for w in WORDS if self.count(w) == 1 and self.count(f"{w} {w} {w}") == 3
            )
        return self._unit

    def additive(self) -> bool:
        """Whether any space-joined sequence of ``unit_words`` counts one token a word,
        checked once on every ordered pair of them (cached).  It holds for tokenizers that
        split on spaces before merging (byte-level BPE, WordPiece, SentencePiece's
        Metaspace): merges never cross a word.  Then a synthetic text needs no recount."""
        if self._additive is None:
            unit = self.unit_words()
            pairs = [f"{a} {b}" for a in unit for b in unit]
            self._additive = bool(unit) and self.count(" ".join(pairs)) == 2 * len(pairs)
        return self._additive

    def joins_exactly(self) -> bool:
        # Texts of unit words joined by spaces (text_of_length's own when this holds).
        return len(self.unit_words()) >= _MIN_UNIT_WORDS and self.additive()

    def count_joined(self, head: str) -> int:
        # One token a word when joins_exactly: count the spaces, not the tokens.
        if self.joins_exactly():
            return head.count(" ") + 1 if head else 0
        return self.count(head)

    def text_of_length(self, tokens: int, seed: int) -> str:
        if tokens <= 0:
            return ""
        unit = self.unit_words()
        if len(unit) >= _MIN_UNIT_WORDS:
            text = " ".join(random.Random(seed).choices(unit, k=tokens))
            if self.additive() or self.count(text) == tokens:
                return text
        return self._cut_to_length(tokens, seed)

    def _cut_to_length(self, tokens: int, seed: int) -> str:
        chars = tokens * 8
        while True:
            text = word_text(chars, seed)
            ends = self._ends(text)
            if len(ends) >= tokens + 8:  # a margin to move the cut forward
                break
            chars *= 2
        k = tokens - 1
        seen: set[int] = set()
        for _ in range(_MAX_ROUNDS):
            candidate = text[: ends[k]]
            got = self.count(candidate)
            if got == tokens:
                return candidate
            seen.add(k)
            k = min(max(0, k + tokens - got), len(ends) - 1)
            if k in seen:
                k = min(max(0, k + (1 if got < tokens else -1)), len(ends) - 1)
                if k in seen:
                    break
        raise TokenizerError(
            f"tokenizer {self.name} cannot make a text of exactly {tokens} tokens from lens's "
            "word list (its counts of a text and of its prefixes disagree)"
        )


class HfTokenizer(_OffsetTokenizer):
    """A Hugging Face ``tokenizer.json`` through the ``tokenizers`` library."""

    def __init__(self, path: Path, shown: str) -> None:
        tokenizers = _import("tokenizers", "tokenizers", "tokenizer: {hf: ...}")
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            where = f"{shown} has no tokenizer.json" if path.is_dir() else f"no file {shown}"
            raise TokenizerError(
                f"{where}: tokenizer: {{hf: PATH}} takes a local tokenizer.json or a model "
                "folder holding one (lens never downloads one)"
            )
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(file))
        except Exception as exc:
            raise TokenizerError(f"{shown} is not a tokenizer.json: {exc}") from None
        self.path = str(file)
        self.name = f"hf:{shown}"

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        encoded = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    def _ends(self, text: str) -> list[int]:
        return [end for _, end in self._tok.encode(text, add_special_tokens=False).offsets]

    def __reduce__(self) -> tuple[Any, ...]:
        # Worker processes load it again from the file (the plan was built from it).
        return (_hf_from_file, (self.path, self.name))


def _hf_from_file(path: str, name: str) -> HfTokenizer:
    tokenizer = HfTokenizer(Path(path), name.removeprefix("hf:"))
    return tokenizer


_TIKTOKEN_LOCK = threading.Lock()


class TiktokenTokenizer(_OffsetTokenizer):
    """A tiktoken encoding whose BPE file is already in tiktoken's local cache
    (``TIKTOKEN_CACHE_DIR``): lens never lets tiktoken download it."""

    def __init__(self, encoding: str) -> None:
        tiktoken = _import("tiktoken", "tiktoken", "tokenizer: {tiktoken: ...}")
        with _TIKTOKEN_LOCK, _offline_tiktoken():
            try:
                self._enc = tiktoken.get_encoding(encoding)
            except _NotLocal:
                raise TokenizerError(
                    f"the BPE file of tiktoken encoding {encoding!r} is not available locally, "
                    "and lens downloads nothing: put it in tiktoken's cache (set "
                    "TIKTOKEN_CACHE_DIR to a folder holding it), or use tokenizer: {hf: PATH}"
                ) from None
            except ValueError as exc:
                raise TokenizerError(f"unknown tiktoken encoding {encoding!r}: {exc}") from None
        self.encoding = encoding
        self.name = f"tiktoken:{encoding}"

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def _ends(self, text: str) -> list[int]:
        ids = self._enc.encode(text, disallowed_special=())
        _, starts = self._enc.decode_with_offsets(ids)
        return [*starts[1:], len(text)]

    def __reduce__(self) -> tuple[Any, ...]:
        return (TiktokenTokenizer, (self.encoding,))


class _NotLocal(Exception):
    pass


@contextmanager
def _offline_tiktoken() -> Iterator[None]:
    """tiktoken fetches a BPE file it has not cached; make that fetch fail instead."""
    import tiktoken.load as tiktoken_load  # noqa: PLC0415 - optional extra

    original: Callable[[str], bytes] = tiktoken_load.read_file

    def local_only(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise _NotLocal(blobpath)
        return original(blobpath)

    # Through the module's namespace: read_file_cached looks the name up there at each call.
    namespace = vars(tiktoken_load)
    namespace["read_file"] = local_only
    try:
        yield
    finally:
        namespace["read_file"] = original


def _import(module: str, extra: str, feature: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise TokenizerError(
            f"{feature} needs the {module!r} package: pip install 'llm-latency-lens[{extra}]'"
        ) from None


def load_tokenizer(
    spec: str | dict[str, str] | None, base_dir: Path, display_dir: str = ""
) -> Tokenizer:
    """The tokenizer a scenario's ``tokenizer:`` names (None: the estimate); paths are
    relative to the scenario's folder.  Raises ``TokenizerError`` with what went wrong."""
    if spec is None or spec == "estimate":
        return ESTIMATE
    if spec == "server":
        # The scenario loader makes these: the server's address is its provider's.
        raise TokenizerError("tokenizer: server is resolved with its provider, not here")
    assert isinstance(spec, dict)
    if "hf" in spec:
        written = spec["hf"]
        shown = str(Path(display_dir) / written) if display_dir else written
        return HfTokenizer(base_dir / written, shown)
    return TiktokenTokenizer(spec["tiktoken"])
