"""The PromQL of deploy/: every expression of the dashboard and the rules file, read
programmatically (a new panel or rule is covered without touching a test), and the
rewrites the real-Prometheus test applies to them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "lens-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "lens-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "lens-rules.test.yml"


@dataclass(frozen=True)
class Expr:
    where: str  # "panel 'TTFT p99' target A", "alert LensProviderDown"
    expr: str
    kind: str  # "panel", "record" or "alert"


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    out: list[dict[str, Any]] = []
    for panel in doc["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def dashboard_exprs() -> list[Expr]:
    return [
        Expr(f"panel {panel['title']!r} target {target['refId']}", target["expr"], "panel")
        for panel in panels(dashboard())
        for target in panel.get("targets", [])
    ]


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_exprs() -> list[Expr]:
    return [
        Expr(
            f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}",
            rule["expr"],
            "alert" if "alert" in rule else "record",
        )
        for rule in rules()
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's template variables replaced as Grafana would (``$name`` and ``${name}``),
    longest names first so ``$__rate_interval`` is not read as ``$__rate``."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    left = re.findall(r"\$\{?\w+", expr)
    assert not left, f"template variables left unsubstituted: {left} in {expr}"
    return expr


_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")


def with_bool(expr: str) -> str:
    """Every filtering comparison turned into its ``bool`` form: ``a > 0.1`` keeps only the
    series above 0.1, ``a > bool 0.1`` answers 0 or 1 for every series of ``a``.  An alert's
    condition so rewritten returns data exactly when its inputs exist and it is valid
    PromQL, whether it would fire or not.  Label matchers (inside ``{}``) and strings are
    left alone."""
    out: list[str] = []
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            out.append(ch)
            if ch == "\\":
                out.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = None
            i += 1
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and (match := _COMPARISON.match(expr, i)):
            op = match.group(0)
            rest = expr[i + len(op) :]
            out.append(op if rest.lstrip().startswith("bool") else f"{op} bool")
            i += len(op)
            continue
        out.append(ch)
        i += 1
    return "".join(out)
