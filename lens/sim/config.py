"""Command-line flags of the simulator, in one table so both directions agree.

``SimServerProcess`` turns settings into argv with ``config_to_argv`` and the child parses
them back with ``parse_argv``; both walk ``_SETTINGS_FLAGS``, and a test round-trips every
field, so a new ``SimSettings`` field cannot be forgotten on one side only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import get_args

from lens.plan.model import SimProtocol, SimSettings

DEFAULT_MODEL = "lens-sim-1"
LISTENING_PREFIX = "lens-sim listening on "

# (suffix, multiplier, divisor) to seconds; longest suffix first so "ms" is not read as "m".
_UNITS: tuple[tuple[str, float, float], ...] = (
    ("ms", 1.0, 1e3),
    ("us", 1.0, 1e6),
    ("µs", 1.0, 1e6),
    ("s", 1.0, 1.0),
    ("m", 60.0, 1.0),
)


def parse_duration(text: str) -> float:
    """Seconds from ``150ms``, ``0.15s``, ``0.15`` (bare numbers are seconds), ``2m``, ``50us``.

    Sub-second units are *divided* (``150 / 1e3``), so ``150ms`` is exactly the float
    ``0.15``, the same as ``float("0.15")``; that keeps settings round-trips exact.
    """
    raw = text.strip()
    multiplier, divisor = 1.0, 1.0
    for suffix, mul, div in _UNITS:
        if raw.endswith(suffix):
            raw, multiplier, divisor = raw[: -len(suffix)].strip(), mul, div
            break
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"invalid duration {text!r} (examples: 150ms, 0.15s, 0.15)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid duration {text!r}: must be finite and >= 0")
    return value * multiplier / divisor


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"rate must be within [0, 1], got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be >= 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be finite and >= 0, got {text!r}")
    return value


PROTOCOLS: tuple[str, ...] = get_args(SimProtocol)


def _protocol(text: str) -> str:
    if text not in PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(PROTOCOLS)}, got {text!r}")
    return text


def _capacity(text: str) -> int | None:
    value = _non_negative_int(text)
    return value or None  # 0: no limit, so every SimSettings value has a flag form


def _switch(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text == "true"


def _argparse_type(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    """Wrap a parser so argparse prints our message instead of a bare 'invalid value'."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name}: {exc}") from None

    convert.__name__ = name
    return convert


@dataclass(frozen=True, slots=True)
class _Flag:
    field: str  # SimSettings attribute
    flags: tuple[str, ...]  # first one is what config_to_argv writes
    parse: Callable[[str], object]
    help: str
    # How config_to_argv writes the value: repr keeps floats exact, but would quote a
    # string (``'anthropic'``), so string fields write themselves.
    format: Callable[[object], str] = repr


_SETTINGS_FLAGS: tuple[_Flag, ...] = (
    _Flag("ttft_s", ("--ttft", "--ttft-s"), parse_duration, "time to first token (150ms, 0.15s)"),
    _Flag("itl_s", ("--itl", "--itl-s"), parse_duration, "inter-token latency (15ms, 0.015)"),
    _Flag("output_tokens", ("--output-tokens",), _non_negative_int, "content tokens per response"),
    _Flag("jitter", ("--jitter",), _non_negative_float, "relative std-dev of every delay"),
    _Flag("error_429", ("--error-429",), _rate, "fraction of requests answered 429"),
    _Flag("error_500", ("--error-500",), _rate, "fraction of requests answered 500"),
    _Flag("cut_stream", ("--cut-stream",), _rate, "fraction of streams cut mid-way"),
    _Flag("seed", ("--seed",), int, "seed of every random decision"),
    _Flag(
        "protocol",
        ("--protocol",),
        _protocol,
        f"wire protocol to speak: {', '.join(PROTOCOLS)}",
        format=str,
    ),
    _Flag(
        "capacity",
        ("--capacity",),
        _capacity,
        "responses generated at once; later requests queue, FIFO (0: no limit)",
        format=lambda value: str(value or 0),
    ),
    _Flag(
        "engine_timings",
        ("--engine-timings",),
        _switch,
        "openai: llama.cpp's timings object on the finish chunk (true/false)",
        format=lambda value: str(value).lower(),
    ),
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the simulator process needs: behaviour plus where and how to listen."""

    settings: SimSettings = field(default_factory=SimSettings)
    host: str = "127.0.0.1"
    port: int = 0
    model: str = DEFAULT_MODEL
    # Exit when stdin reaches EOF: set by SimServerProcess (stdin is its pipe) so the
    # child dies with its parent.  Off by default: a terminal's stdin must not be touched.
    exit_on_stdin_eof: bool = False


def validate_settings(settings: SimSettings) -> None:
    """Reject settings the server cannot honour, with a message naming the field."""
    for name in ("ttft_s", "itl_s", "jitter"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if settings.output_tokens < 0:
        raise ValueError(f"output_tokens must be >= 0, got {settings.output_tokens!r}")
    rates = (settings.error_429, settings.error_500, settings.cut_stream)
    if not all(0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"error_429, error_500 and cut_stream must be within [0, 1]: {rates}")
    # One uniform draw is split into these ranges, so they must fit in [0, 1] together.
    if sum(rates) > 1.0 + 1e-12:
        raise ValueError(f"error_429 + error_500 + cut_stream must be <= 1, got {sum(rates)!r}")
    if settings.capacity is not None and settings.capacity < 1:
        raise ValueError(f"capacity must be >= 1 (or None: no limit), got {settings.capacity!r}")
    if settings.protocol not in PROTOCOLS:
        raise ValueError(
            f"protocol must be one of {', '.join(PROTOCOLS)}, got {settings.protocol!r}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lens.sim",
        description="Streaming LLM API simulator (lens-sim): OpenAI Chat and Responses, "
        "Azure OpenAI, Anthropic Messages, Gemini and Bedrock wire protocols.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=_argparse_type(_non_negative_int, "port"), default=0, help="0: ephemeral"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model id listed by /v1/models")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (parent died)"
    )
    defaults = SimSettings()
    for flag in _SETTINGS_FLAGS:
        parser.add_argument(
            *flag.flags,
            dest=flag.field,
            type=_argparse_type(flag.parse, flag.flags[0].lstrip("-")),
            default=getattr(defaults, flag.field),
            help=f"{flag.help} (default %(default)s)",
        )
    return parser


def parse_argv(argv: Sequence[str] | None = None) -> ServerConfig:
    """Flags to a validated config; argparse errors exit with status 2 as usual."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    settings = SimSettings(**{f.field: getattr(ns, f.field) for f in _SETTINGS_FLAGS})
    try:
        validate_settings(settings)
    except ValueError as exc:
        parser.error(str(exc))
    return ServerConfig(
        settings=settings,
        host=ns.host,
        port=ns.port,
        model=ns.model,
        exit_on_stdin_eof=ns.exit_on_stdin_eof,
    )


def settings_to_argv(settings: SimSettings) -> list[str]:
    """Flags for every ``SimSettings`` field; ``repr`` keeps floats exact on the way back."""
    argv: list[str] = []
    for flag in _SETTINGS_FLAGS:
        argv += [flag.flags[0], flag.format(getattr(settings, flag.field))]
    return argv


def config_to_argv(config: ServerConfig) -> list[str]:
    argv = ["--host", config.host, "--port", str(config.port), "--model", config.model]
    if config.exit_on_stdin_eof:
        argv.append("--exit-on-stdin-eof")
    return argv + settings_to_argv(config.settings)


def _check_table_covers_settings() -> None:
    # Fails at import (and so in every test run) if SimSettings grows a field the flag
    # table does not carry.
    missing = {f.name for f in dataclasses.fields(SimSettings)} - {f.field for f in _SETTINGS_FLAGS}
    if missing:  # pragma: no cover - only reachable by editing SimSettings
        raise RuntimeError(f"lens.sim.config has no flag for SimSettings fields {missing}")


_check_table_covers_settings()
