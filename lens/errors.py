"""The exception tree of lens.

Exceptions are for misuse of lens (bad scenario, bad flags) and for bugs.  Failures of the
system under test (HTTP errors, timeouts, cut streams) are *data*: they become
``RequestRecord`` values with an error class, never exceptions that escape the executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the type of ExportError.results only: no import at run time
    from lens.export.results import Results


@dataclass(frozen=True, slots=True)
class SourcePos:
    """A 1-based position in a source file, as editors show it."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where, which field, and what was expected."""

    message: str
    pos: SourcePos | None = None
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"


def describe(exc: BaseException, limit: int = 300) -> str:
    """``ExcType: message`` on one line, with at most about ``limit`` characters of message:
    how records and the one-line failure report name an exception."""
    text = " ".join(str(exc)[: limit + 1].split())
    if len(text) > limit:
        text = text[:limit] + "..."
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def innermost(exc: BaseException) -> BaseException:
    """The exception a group of one wraps (trio nurseries wrap what their tasks raise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class LensError(Exception):
    """Base of every error lens raises on purpose."""


class InputError(LensError):
    """Bad user input (scenario, flags, results file). The CLI maps it to exit code 2."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ScenarioError(InputError):
    """The scenario file is not valid; every problem names file:line:col where known."""


class PlanError(InputError):
    """The scenario is valid but cannot be compiled (e.g. an unknown provider id)."""


class ProviderError(LensError):
    """A provider was misconfigured in a way only discovered when building a request."""


class ResultsError(InputError):
    """A results file that cannot be read back (missing, not JSON, not lens results), or a
    question the results cannot answer (a stage or provider they do not hold)."""


class ExportError(LensError):
    """An exporter could not write or push its output, or an export target (``KIND=DEST``)
    cannot be used; local results are still written.

    ``failures`` says what failed, one line per target (credentials masked).  When it is
    ``lens.run`` whose exports failed, ``results`` holds the run's results, complete."""

    def __init__(self, message: str = "", *, failures: Sequence[str] = ()) -> None:
        self.failures: tuple[str, ...] = tuple(failures) or ((message,) if message else ())
        self.results: Results | None = None
        super().__init__(message or "\n".join(self.failures))
