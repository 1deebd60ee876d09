"""Tiny tokenizers the tests train themselves with the `tokenizers` library (never a
download): a WordPiece whose small vocabulary splits some of lens's words into pieces, and a
byte-level BPE whose vocabulary keeps few of them whole."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lens.scenario.tokenizers import WORDS

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "people call water oil now and then",
    "what is the capital of france",
    " ".join(WORDS),
]


def wordpiece(path: Path, vocab_size: int = 120) -> Path:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"])
    tok.train_from_iterator(SENTENCES, trainer)
    tok.save(str(path))
    return path


def byte_bpe(path: Path, vocab_size: int = 300) -> Path:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES, trainer)
    tok.save(str(path))
    return path
