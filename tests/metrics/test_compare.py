"""The statistics of ``lens compare`` (lens.metrics.compare), on synthetic samples.

Samples are drawn as the simulated server draws its delays (a lognormal factor with mean 1
and relative standard deviation ``jitter``), from seeded generators, so every test is
deterministic."""

from __future__ import annotations

import math
import random

import pytest

from lens import exitcodes
from lens.metrics import compare as compare_module
from lens.metrics.compare import (
    MIN_BOOTSTRAP_REQUESTS,
    Check,
    Comparison,
    Options,
    Outcome,
    Side,
    _binomial_ranks,
    _Resampler,
    compare_sides,
    judge_interval,
    newcombe,
    wilson,
)
from lens.metrics.sketch import nearest_rank
from lens.metrics.summary import MetricStats
from lens.scenario.thresholds import (
    DEFAULT_CHECKS,
    Threshold,
    ThresholdError,
    default_threshold,
    parse_threshold,
    parse_threshold_flag,
)

REL10 = Threshold(0.10, relative=True, text="+10%")


def lognormal(rng: random.Random, mean: float, jitter: float) -> float:
    sigma2 = math.log1p(jitter * jitter)
    return mean * math.exp(rng.gauss(-sigma2 / 2, math.sqrt(sigma2)))


def stats_of(values: list[float], exact: bool = True) -> MetricStats:
    xs = sorted(values)
    if not xs:
        return MetricStats(0)
    return MetricStats(
        n=len(xs),
        exact=exact,
        min=xs[0],
        mean=math.fsum(xs) / len(xs),
        p50=nearest_rank(xs, 0.5),
        p90=nearest_rank(xs, 0.9),
        p95=nearest_rank(xs, 0.95),
        p99=nearest_rank(xs, 0.99),
        max=xs[-1],
    )


def side(
    seed: int,
    *,
    n: int = 200,
    ttft: float = 100.0,
    jitter: float = 0.1,
    tokens: int = 8,
    itl: float = 10.0,
    errors: int = 0,
    records: bool = True,
    exact: bool = True,
) -> Side:
    """A stage x provider as the simulator would measure it: ``n`` requests, TTFT and
    each ITL gap jittered, a cost per request."""
    rng = random.Random(seed)
    ttfts = [[lognormal(rng, ttft, jitter)] for _ in range(n)]
    gaps = [[lognormal(rng, itl, jitter) for _ in range(tokens - 1)] for _ in range(n)]
    e2e = [[t[0] + math.fsum(g)] for t, g in zip(ttfts, gaps, strict=True)]
    tps = [[(tokens - 1) * 1000 / math.fsum(g)] for g in gaps]
    cost = [[0.0000274] for _ in range(n)]
    values = {"ttft": ttfts, "itl": gaps, "e2e": e2e, "output_tokens_per_s": tps, "cost": cost}
    flat = {name: [v for c in cs for v in c] for name, cs in values.items()}
    return Side(
        stage="s",
        provider="sim",
        requests=n + errors,
        errors=errors,
        stats={name: stats_of(vs, exact) for name, vs in flat.items()},
        values=values if records else None,
    )


def checks(*labels: str) -> list[tuple[str, Threshold]]:
    return [(label, default_threshold(label)) for label in labels or DEFAULT_CHECKS]


def by_label(found: list[Check]) -> dict[str, Check]:
    return {c.statistic: c for c in found}


# --- thresholds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "text", "value", "relative"),
    [
        ("ttft.p95", "+10%", 0.10, True),
        ("ttft.p95", "10%", 0.10, True),
        ("ttft.p95", "+50ms", 50.0, False),
        ("ttft.p95", "+0.2s", 200.0, False),
        ("itl.p50", "+2ms", 2.0, False),
        ("output_tokens_per_s.p50", "+5%", 0.05, True),
        ("output_tokens_per_s.p50", "+20/s", 20.0, False),
        ("output_tokens_per_s.p50", "+20 tokens/s", 20.0, False),
        ("cost.mean", "+$0.0001", 0.0001, False),
        ("cost.mean", "+15%", 0.15, True),
        # For rates, % is percentage points: an absolute change of the rate.
        ("error_rate", "+0.5%", 0.005, False),
        ("error_rate", "0.01", 0.01, False),
    ],
)
def test_thresholds_in_both_units(label: str, text: str, value: float, relative: bool) -> None:
    t = parse_threshold(label, text)
    assert t.value == pytest.approx(value)
    assert t.relative is relative


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("ttft.p95", "expected METRIC.STAT=CHANGE"),
        ("ttft.p95=", "expected METRIC.STAT=CHANGE"),
        ("tftt.p95=+10%", "did you mean 'ttft'"),
        ("ttft.max=+10%", "cannot be compared: use one of ttft.mean, ttft.p50"),
        ("ttft.p95=+5/s", "ttft is a time: use ms, s or m"),
        ("ttft.p95=soon", "expected a change like +10%"),
        ("input_tokens.p50=+10%", "has no better direction"),
        ("error_rate=+150%", "at most 100%"),
        ("cost.mean=+$10%", "not both"),
    ],
)
def test_bad_thresholds_say_what_is_expected(flag: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=None) as caught:
        parse_threshold_flag(flag)
    assert message in str(caught.value)


def test_default_thresholds() -> None:
    assert default_threshold("ttft.p95") == Threshold(0.10, relative=True, text="+10%")
    assert default_threshold("error_rate") == Threshold(0.02, relative=False, text="+2%")


# --- the verdict rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "better", "outcome"),
    [
        ((0.12, 0.30), "lower", "regressed"),
        ((-0.30, -0.12), "lower", "improved"),
        ((-0.05, 0.08), "lower", "unchanged"),
        ((-0.10, 0.10), "lower", "unchanged"),  # touching the threshold is within it
        ((0.05, 0.15), "lower", "inconclusive"),  # straddles +10 %: never a pass
        ((-0.15, 0.05), "lower", "inconclusive"),
        ((-0.20, 0.20), "lower", "inconclusive"),
        # Higher is better (tokens/s): the same intervals read the other way round.
        ((0.12, 0.30), "higher", "improved"),
        ((-0.30, -0.12), "higher", "regressed"),
        ((-0.05, 0.08), "higher", "unchanged"),
        ((-0.15, 0.05), "higher", "inconclusive"),
    ],
)
def test_judge_interval(interval: tuple[float, float], better: str, outcome: str) -> None:
    assert judge_interval(interval, 0.10, better)[0] == outcome  # type: ignore[arg-type]


# --- intervals ---------------------------------------------------------------------------


def test_wilson_and_newcombe_match_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80,
    # method 10 gives 0.0524 to 0.3339.
    lo, hi = newcombe(56, 70, 48, 80, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    # Wilson score interval of 0/10 at 95 %: 0 to 0.2775 (Newcombe 1998a, table I).
    z = 1.959963984540054
    assert wilson(0, 10, z)[1] == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.parametrize(("n", "q"), [(20, 0.5), (40, 0.95), (100, 0.9), (300, 0.5)])
def test_order_statistic_ranks_cover_the_quantile(n: int, q: float) -> None:
    low, high = _binomial_ranks(n, q, 0.95)
    # P(x_(low) <= xi_q <= x_(high)) = P(low <= B < high), B ~ Binomial(n, q).
    pmf = [math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(n + 1)]
    coverage = math.fsum(pmf[max(low, 0) : high])
    assert coverage >= 0.95
    # Equal tails, each as large as allowed: one rank inwards would leave more than 2.5 %.
    if low >= 1 and high <= n:
        assert math.fsum(pmf[:low]) <= 0.025 < math.fsum(pmf[: low + 1])
        assert math.fsum(pmf[high:]) <= 0.025 < math.fsum(pmf[high - 1 :])


# --- bootstrap on records ----------------------------------------------------------------


def test_the_four_situations() -> None:
    base = side(1)
    same = compare_sides(base, side(2), checks("ttft.p50", "ttft.p95"))
    assert {c.outcome for c in same} == {"unchanged"}
    worse = by_label(compare_sides(base, side(3, ttft=130), checks("ttft.p50", "ttft.p95")))
    assert worse["ttft.p50"].outcome == worse["ttft.p95"].outcome == "regressed"
    assert worse["ttft.p50"].relative_change == pytest.approx(0.30, abs=0.06)
    lo, hi = worse["ttft.p50"].relative_interval or (0, 0)
    assert 0.10 < lo < worse["ttft.p50"].relative_change < hi  # type: ignore[operator]
    better = compare_sides(base, side(4, ttft=70), checks("ttft.p50", "ttft.p95"))
    assert {c.outcome for c in better} == {"improved"}
    few = by_label(compare_sides(side(5, n=12), side(6, n=12, ttft=105), checks()))
    assert few["ttft.p95"].outcome == "inconclusive"
    assert few["ttft.p95"].reason == "p95 needs >= 20 samples, the baseline has 12"
    assert few["ttft.p50"].outcome == "inconclusive"


def test_higher_is_better_for_tokens_per_second() -> None:
    # Slower gaps: fewer tokens per second, a regression, though the number went down.
    found = by_label(compare_sides(side(1), side(2, itl=13), checks()))
    assert found["output_tokens_per_s.p50"].outcome == "regressed"
    assert found["itl.p50"].outcome == "regressed"
    assert found["ttft.p50"].outcome == "unchanged"


def test_a_side_compared_with_itself_is_unchanged_on_every_default_check() -> None:
    s = side(7)
    found = compare_sides(s, s, checks())
    assert [c.statistic for c in found] == list(DEFAULT_CHECKS)
    assert {c.outcome for c in found} == {"unchanged"}, [
        (c.statistic, c.outcome, c.reason) for c in found
    ]
    assert all(c.change == 0 for c in found)


def test_the_bootstrap_is_seeded_and_reproducible() -> None:
    a, b = side(1), side(2, ttft=108)
    opts = Options(resamples=400)
    first = compare_sides(a, b, checks(), opts)
    assert compare_sides(a, b, checks(), opts) == first
    other = compare_sides(a, b, checks(), Options(resamples=400, seed=1))
    assert [c.relative_interval for c in other] != [c.relative_interval for c in first]


def test_absolute_thresholds_judge_the_absolute_interval() -> None:
    base, cur = side(1), side(2, ttft=130)
    loose = parse_threshold("ttft.p50", "+50ms")  # a +30 ms change is within 50 ms
    tight = parse_threshold("ttft.p50", "+10ms")
    assert compare_sides(base, cur, [("ttft.p50", loose)])[0].outcome == "unchanged"
    assert compare_sides(base, cur, [("ttft.p50", tight)])[0].outcome == "regressed"


def test_itl_resamples_whole_responses_not_single_gaps() -> None:
    # Each response is uniformly fast or slow (all its gaps alike): 20 responses hold only
    # 20 independent values, however many gaps.  Treated as 20 x 50 independent gaps the
    # interval would be ~7 times too narrow and call noise a regression.
    def clustered(seed: int) -> Side:
        rng = random.Random(seed)
        gaps = [[lognormal(rng, 10.0, 0.5)] * 50 for _ in range(20)]
        flat = [g for c in gaps for g in c]
        return Side("s", "sim", 20, 0, {"itl": stats_of(flat)}, {"itl": gaps})

    wide = [compare_sides(clustered(s), clustered(s + 100), checks("itl.p50"))[0] for s in range(8)]
    assert all(c.outcome != "regressed" for c in wide)
    widths = [c.relative_interval[1] - c.relative_interval[0] for c in wide if c.relative_interval]
    assert min(widths) > 0.2


def test_too_few_requests_for_a_bootstrap_is_inconclusive() -> None:
    found = compare_sides(side(1, n=MIN_BOOTSTRAP_REQUESTS - 1), side(2), checks("ttft.p50"))
    assert found[0].outcome == "inconclusive"
    assert "bootstrap needs >= 10 requests with ttft" in found[0].reason


def test_false_alarm_rate_of_an_unchanged_server_is_low() -> None:
    # 20 pairs of runs of the same server (jitter 20 %, 100 requests), each compared on
    # every default statistic at the default thresholds: not one check says regressed
    # (bench/bench_compare.py measures the rate on the simulator itself).
    outcomes: list[str] = []
    for seed in range(20):
        a, b = side(1000 + seed, n=100, jitter=0.2), side(2000 + seed, n=100, jitter=0.2)
        outcomes += [c.outcome for c in compare_sides(a, b, checks(), Options(resamples=200))]
    assert outcomes.count("regressed") == 0
    assert outcomes.count("unchanged") > len(outcomes) / 2  # noise is told apart, mostly


# --- rates -------------------------------------------------------------------------------


def test_error_rate_uses_a_difference_of_proportions() -> None:
    base = side(1, errors=0)
    worse = side(2, errors=30)  # 30 of 230 failed: +13 points
    found = by_label(compare_sides(base, worse, checks("error_rate")))
    c = found["error_rate"]
    assert c.method == "newcombe"
    assert c.current == pytest.approx(30 / 230)
    assert c.outcome == "regressed"
    same = compare_sides(base, side(3), checks("error_rate"))[0]
    assert same.outcome == "unchanged"  # 0 of 200 on both sides: within +-2 points
    few = compare_sides(side(1, n=50), side(2, n=50), checks("error_rate"))[0]
    assert few.outcome == "inconclusive"  # 0 of 50 cannot exclude +2 points


# --- without records ---------------------------------------------------------------------


def test_without_records_the_summaries_bound_the_change() -> None:
    base, same = side(1, n=1000, records=False), side(2, n=1000, records=False)
    worse = side(3, n=1000, ttft=130, records=False)
    found = by_label(compare_sides(base, same, checks("ttft.p50", "ttft.p95", "cost.mean")))
    assert found["ttft.p50"].method == "summary order statistics"
    assert found["cost.mean"].method == "summary hoeffding"
    assert found["ttft.p50"].outcome == "unchanged"
    assert found["ttft.p95"].outcome in ("unchanged", "inconclusive")
    assert compare_sides(base, worse, checks("ttft.p50"))[0].outcome == "regressed"


def test_t_digest_estimates_widen_the_summary_interval() -> None:
    exact = compare_sides(side(1, records=False), side(2, records=False), checks("ttft.p95"))[0]
    digest = compare_sides(
        side(1, records=False, exact=False), side(2, records=False, exact=False), checks("ttft.p95")
    )[0]
    assert exact.interval is not None
    assert digest.interval is not None
    assert digest.interval[0] < exact.interval[0]
    assert digest.interval[1] > exact.interval[1]


def test_a_statistic_measured_on_neither_side_is_not_a_check() -> None:
    a, b = side(1), side(2)
    unpriced = [
        Side(
            s.stage,
            s.provider,
            s.requests,
            s.errors,
            {k: v for k, v in s.stats.items() if k != "cost"},
            s.values,
        )
        for s in (a, b)
    ]
    found = compare_sides(unpriced[0], unpriced[1], checks())
    assert "cost.mean" not in {c.statistic for c in found}
    # Measured on one side only: something changed that cannot be judged.
    one = compare_sides(unpriced[0], b, checks("cost.mean"))[0]
    assert one.outcome == "inconclusive"


# --- the comparison ----------------------------------------------------------------------


def _check(outcome: Outcome) -> Check:
    return Check(
        "s",
        "p",
        "ttft.p50",
        "ms",
        "lower",
        1.0,
        1.0,
        20,
        20,
        0.0,
        0.0,
        None,
        None,
        REL10,
        outcome,
        "",
        "bootstrap",
    )


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([], exitcodes.OK),
        (["unchanged", "improved"], exitcodes.OK),
        (["unchanged", "inconclusive"], exitcodes.COMPARE_INCONCLUSIVE),
        (["inconclusive", "regressed"], exitcodes.REGRESSED),
    ],
)
def test_exit_codes(outcomes: list[Outcome], code: int) -> None:
    comparison = Comparison("a", "b", tuple(_check(o) for o in outcomes))
    assert comparison.exit_code == code
    assert (exitcodes.REGRESSED, exitcodes.COMPARE_INCONCLUSIVE) == (1, 3)


# --- the resampling shortcuts are the bootstrap ----------------------------------------------


def test_one_beta_draw_per_replicate_is_the_bootstrap_of_a_percentile() -> None:
    rng = random.Random(3)
    values = sorted(lognormal(rng, 100.0, 0.3) for _ in range(60))
    shortcut = sorted(_Resampler([[v] for v in values], "s", 4000).replicates("p95"))
    draw = random.Random(4)
    brute = sorted(nearest_rank(sorted(draw.choices(values, k=60)), 0.95) for _ in range(4000))
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        # The same distribution: its quantiles agree to a rank of the 60 values.
        got, want = nearest_rank(shortcut, q), nearest_rank(brute, q)
        assert abs(values.index(got) - values.index(want)) <= 1, q


def test_the_band_of_the_clustered_bootstrap_changes_no_replicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(5)
    clusters = [[lognormal(rng, 10.0, 0.3)] * 5 + [lognormal(rng, 10.0, 0.3)] for _ in range(80)]
    banded = _Resampler(clusters, "s", 300)
    fast = {stat: banded.replicates(stat) for stat in ("p50", "p95", "p99")}
    monkeypatch.setattr(compare_module, "_PILOT", 10**6)  # every replicate in full
    slow = _Resampler(clusters, "s", 300)
    assert {stat: slow.replicates(stat) for stat in fast} == fast


def test_a_free_model_costs_nothing_on_both_sides_unchanged() -> None:
    def free(seed: int) -> Side:
        s = side(seed)
        assert s.values is not None
        values = {**s.values, "cost": [[0.0] for _ in range(s.requests)]}
        return Side("s", "sim", s.requests, 0, {**s.stats, "cost": stats_of([0.0] * 200)}, values)

    found = compare_sides(free(1), free(2), checks("cost.mean"))[0]
    assert found.relative_change is None  # no relative change from $0
    assert (found.outcome, found.reason) == ("unchanged", "no change in any resample")
