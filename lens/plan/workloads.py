"""Workload pieces of the compiler: synthetic prompts of drawn lengths, dataset prompts, the
per-source length statistics the plan lists, and the request-body merge.

Lengths are drawn with the prompt's seed (``random.Random``), and synthetic text is made by
the scenario's tokenizer to the exact drawn length, so one scenario always compiles to the
same prompts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from lens.plan.model import (
    Conversation,
    Message,
    PromptSource,
    PromptSpec,
    StagePlan,
    ThinkTime,
)
from lens.scenario.model import (
    ConversationPrompt,
    DatasetPrompt,
    LengthDist,
    SessionOptions,
    SyntheticPrompt,
    ThinkDist,
)
from lens.scenario.model.workloads import MAX_TOKENS_DRAWN
from lens.scenario.tokenizers import Tokenizer

# Draws outside [min, max] are drawn again (a truncated distribution keeps its shape); after
# this many misses in a row the draw is clamped instead.
_MAX_REDRAWS = 1000


def draw_length(length: int | LengthDist, rng: random.Random) -> int:
    """One length from ``length`` (a fixed number, or a distribution), at least 1."""
    if isinstance(length, int):
        return length
    low = length.min or 1
    high = length.max or MAX_TOKENS_DRAWN
    if length.dist == "uniform":
        return rng.randint(low, high)
    assert length.mean is not None
    if length.dist == "fixed":
        return min(max(round(length.mean), low), high)
    stdev = length.stdev or 0.0
    value = round(length.mean)
    for _ in range(_MAX_REDRAWS):
        if length.dist == "normal":
            value = round(rng.gauss(length.mean, stdev))
        else:
            # The mean and stdev are of the lengths themselves, as people state them; the
            # underlying normal's parameters follow from them.
            sigma2 = math.log1p((stdev / length.mean) ** 2)
            mu = math.log(length.mean) - sigma2 / 2
            value = round(rng.lognormvariate(mu, math.sqrt(sigma2)))
        if low <= value <= high:
            return value
    return min(max(value, low), high)


def synthetic_prompts(prompt: SyntheticPrompt, tokenizer: Tokenizer) -> list[PromptSpec]:
    """The prompts a ``synthetic:`` entry yields: one (fixed lengths, no ``count``) under the
    prompt's own id, else ``count`` of them, ``<id>#1`` ... each with its drawn lengths."""
    syn = prompt.synthetic
    weight = float(prompt.weight)
    body = dict(prompt.body)
    count = syn.prompts
    fixed_in, fixed_out = syn.input_tokens, syn.output_tokens
    if count == 1 and isinstance(fixed_in, int) and isinstance(fixed_out, int):
        text = tokenizer.text_of_length(fixed_in, syn.seed)
        return [
            PromptSpec(
                prompt.id,
                (Message("user", text),),
                fixed_out,
                weight,
                f"synthetic(seed={syn.seed})",
                body=body,
                input_tokens=fixed_in,
            )
        ]
    # Separate streams: a change of the output distribution leaves the inputs as they were.
    inputs = random.Random(f"lens-input:{syn.seed}")
    outputs = random.Random(f"lens-output:{syn.seed}")
    specs = []
    for i in range(1, count + 1):
        n_in = draw_length(syn.input_tokens, inputs)
        n_out = draw_length(syn.output_tokens, outputs)
        text = tokenizer.text_of_length(n_in, syn.seed * 1_000_003 + i)
        specs.append(
            PromptSpec(
                f"{prompt.id}#{i}",
                (Message("user", text),),
                n_out,
                weight,
                f"synthetic(seed={syn.seed}, #{i})",
                body=body,
                input_tokens=n_in,
            )
        )
    return specs


def think_time(value: float | ThinkDist) -> ThinkTime:
    """The plan's form of a ``think_time:`` (seconds, or a distribution)."""
    if not isinstance(value, ThinkDist):
        return ThinkTime("fixed", value)
    return ThinkTime(value.dist, value.mean or 0.0, value.stdev or 0.0, value.min, value.max)


def _conversation(
    options: SessionOptions, turns: tuple[str, ...], replies: tuple[str | None, ...]
) -> Conversation:
    return Conversation(
        turns=turns,
        replies=replies,
        carry=options.carry,
        think=think_time(options.think_time),
        seed=options.seed,
    )


def conversation_prompt(prompt: ConversationPrompt) -> PromptSpec:
    """An inline ``conversation:``: its first turn as the prompt's messages (after the
    system message), every turn in its ``Conversation``."""
    conv = prompt.conversation
    lead = (Message("system", conv.system),) if conv.system is not None else ()
    replies: tuple[str | None, ...] = tuple(conv.replies[: len(conv.turns)])
    replies += (None,) * (len(conv.turns) - len(replies))
    return PromptSpec(
        prompt.id,
        (*lead, Message("user", conv.turns[0])),
        prompt.max_tokens,
        float(prompt.weight),
        "inline conversation",
        body=dict(prompt.body),
        conversation=_conversation(conv, conv.turns, replies),
    )


def dataset_prompts(prompt: DatasetPrompt) -> list[PromptSpec]:
    """The sampled prompts of a ``dataset:`` entry, ``<id>#<line or item>`` (with ``turns:
    all``, each a conversation)."""
    spec = prompt.dataset
    weight = float(prompt.weight)
    body = dict(prompt.body)
    options = prompt.session_options
    out = []
    for req in prompt.requests:
        # from_dataset without a reference answer: None, the stage's max_tokens.
        written = spec.output_tokens
        limit = req.reference_tokens if written == "from_dataset" else written
        out.append(
            PromptSpec(
                f"{prompt.id}#{req.key}",
                tuple(Message(m.role, m.content) for m in req.messages),
                limit,
                weight,
                req.where,
                body=body,
                input_tokens=req.input_tokens,
                conversation=None
                if options is None
                else _conversation(options, req.turns, req.replies),
            )
        )
    return out


def conversation_detail(specs: Sequence[PromptSpec]) -> str:
    """Turns per conversation, carry and think time, for the plan's prompt sources."""
    convs = [s.conversation for s in specs if s.conversation is not None]
    if not convs:
        return ""
    counts = sorted(len(c.turns) for c in convs)
    turns = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
    first = convs[0]
    text = (
        f"{len(convs)} conversation{'s' if len(convs) != 1 else ''} of {turns} turns "
        f"(p50 {nearest_rank(counts, 0.5)}), carry {first.carry}, think {first.think.describe()}"
    )
    if first.carry == "reference":
        missing = sum(1 for c in convs for r in c.replies[:-1] if r is None)
        if missing:
            text += f" ({missing} replies missing)"
    return text


def source_of(
    group_id: str, kind: str, specs: Sequence[PromptSpec], tokenizer: Tokenizer, detail: str = ""
) -> PromptSource:
    """Length statistics of ``specs`` (counting any not counted yet with ``tokenizer``)."""
    missing = [s for s in specs if s.input_tokens is None]
    if missing:
        texts = [m.content for s in missing for m in s.messages]
        counts = iter(tokenizer.count_many(texts))
        counted = {s.id: sum(next(counts) for _ in s.messages) for s in missing}
    lengths = sorted(s.input_tokens if s.input_tokens is not None else counted[s.id] for s in specs)
    limits = [s.max_tokens for s in specs]
    given = [x for x in limits if x is not None]
    if not given:
        output = "the stage's max_tokens"
    elif len(set(given)) == 1 and len(given) == len(limits):
        output = f"max_tokens {given[0]}"
    else:
        output = f"max_tokens {min(given)}-{max(given)}"
        if len(given) < len(limits):
            output += f" ({len(limits) - len(given)} take the stage's)"
    return PromptSource(
        id=group_id,
        kind=kind,
        prompts=len(specs),
        tokenizer=tokenizer.name,
        min_tokens=lengths[0] if lengths else 0,
        p50_tokens=nearest_rank(lengths, 0.5),
        p90_tokens=nearest_rank(lengths, 0.9),
        max_tokens=lengths[-1] if lengths else 0,
        detail=detail,
        output=output,
    )


def nearest_rank(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank ``q`` quantile of sorted values (0 for none)."""
    if not ordered:
        return 0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def dataset_detail(prompt: DatasetPrompt) -> str:
    spec = prompt.dataset
    parts = [f"{spec.path} ({spec.format}): {prompt.records} read"]
    if prompt.skipped:
        parts.append(f"{prompt.skipped} without a user turn skipped")
    if spec.filter is not None:
        parts.append(f"{prompt.passed} within the filter")
    if spec.sample is not None:
        parts.append(f"sampled {spec.sample} (seed {spec.seed})")
    return ", ".join(parts)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = deep_merge(below, value)
        else:
            out[key] = value
    return out


def unit_prompts(prompts: Mapping[str, PromptSpec], unit: StagePlan) -> Mapping[str, PromptSpec]:
    """The prompts as ``unit`` sends them: each one's ``body`` merged over the unit's
    (provider and stage), so the adapter applies one mapping.  Precedence: prompt > stage >
    provider.  Without a unit body, ``prompts`` itself."""
    if not unit.body:
        return prompts
    return {
        pid: replace(prompts[pid], body=deep_merge(unit.body, prompts[pid].body))
        for pid in dict.fromkeys(unit.prompts)
    }
