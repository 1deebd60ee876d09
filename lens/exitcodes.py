"""Every exit code lens returns, in one place.

CI systems read these, so they are a contract: a failed SLA (1) must never be confused
with lens itself failing (5), nor an export failure (4) with bad input (2).
"""

from __future__ import annotations

OK = 0  # every SLA passed (or nothing to judge); a command did what it was asked
SLA_FAILED = 1  # at least one SLA failed (also: `lens recommend` found no eligible provider)
INPUT = 2  # invalid input: scenario, flags, results file
INCONCLUSIVE = 3  # no SLA failed but some could not be judged; or the run is partial
EXPORT_FAILED = 4  # an export failed (and no SLA did: 1 wins)
LENS_FAILED = 5  # lens itself failed unexpectedly (a bug); what was measured is still written
INTERRUPTED = 130  # interrupted before anything ran (128 + SIGINT)

# lens compare: the same values, named for what they mean there.
REGRESSED = SLA_FAILED  # at least one statistic is measurably worse than the baseline
COMPARE_INCONCLUSIVE = INCONCLUSIVE  # nothing regressed, but some change could not be told
