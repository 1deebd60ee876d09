"""lens: measure how fast and how costly LLM APIs really are.

The library API, the one the ``lens`` command is built on::

    import lens

    scenario = lens.load_scenario("scenarios/quickstart.yaml")  # a path, YAML text or a dict
    plan = lens.compile_plan(scenario)                          # inspect it: nothing is sent
    results = lens.run(plan)                                    # or: await lens.run_async(plan)
    print(results.summary(stage="steady").metrics["ttft"].p95)
    for verdict in results.verdicts:
        print(verdict.assertion, verdict.status, verdict.value)

Everything here is documented in ``lens.api``; errors lens raises on purpose derive from
``LensError``.  The names load on first use, so ``import lens`` (and every process that
imports a part of lens, such as the simulated server) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lens._version import __version__
from lens.errors import (
    ExportError,
    LensError,
    PlanError,
    ProviderError,
    ResultsError,
    ScenarioError,
)

if TYPE_CHECKING:
    from lens.api import (
        compare,
        compile_plan,
        describe_plan,
        estimate,
        export,
        load_results,
        load_scenario,
        merge,
        recommend,
        report,
        run,
        run_async,
    )
    from lens.export.results import Results
    from lens.metrics.compare import Comparison
    from lens.plan.model import Plan
    from lens.records import RequestRecord
    from lens.scenario.model import Scenario

__all__ = [
    "Comparison",
    "ExportError",
    "LensError",
    "Plan",
    "PlanError",
    "ProviderError",
    "RequestRecord",
    "Results",
    "ResultsError",
    "Scenario",
    "ScenarioError",
    "__version__",
    "compare",
    "compile_plan",
    "describe_plan",
    "estimate",
    "export",
    "load_results",
    "load_scenario",
    "merge",
    "recommend",
    "report",
    "run",
    "run_async",
]

_HOMES = {
    "compare": "lens.api",
    "compile_plan": "lens.api",
    "describe_plan": "lens.api",
    "estimate": "lens.api",
    "load_results": "lens.api",
    "load_scenario": "lens.api",
    "merge": "lens.api",
    "recommend": "lens.api",
    "report": "lens.api",
    "run_async": "lens.api",
    "Results": "lens.export.results",
    "Comparison": "lens.metrics.compare",
    "Plan": "lens.plan.model",
    "RequestRecord": "lens.records",
    "Scenario": "lens.scenario.model",
}


# ``lens.run`` and ``lens.export`` also name subpackages, and the import system sets a
# package's attribute to a subpackage when it first loads it.  Loading both (empty) now,
# before the functions are bound, keeps the functions in place whatever is imported
# later.  ``from lens.run.session import x`` and ``import lens.export.results`` work as
# ever; ``from lens import run`` and ``import lens.run.session as s`` give the function.
importlib.import_module("lens.export")
importlib.import_module("lens.run")

if not TYPE_CHECKING:

    def run(*args: Any, **kwargs: Any) -> Any:
        """``lens.api.run``: run a scenario and return its ``Results`` (blocking)."""
        from lens.api import run as run_  # noqa: PLC0415  (loaded on first use)

        globals()["run"] = run_
        return run_(*args, **kwargs)

    def export(*args: Any, **kwargs: Any) -> Any:
        """``lens.api.export``: export results to ``"KIND=DEST"`` targets."""
        from lens.api import export as export_  # noqa: PLC0415  (loaded on first use)

        globals()["export"] = export_
        return export_(*args, **kwargs)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lens' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
