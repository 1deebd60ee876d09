"""Copy scenarios/nightly.yaml into deploy/k8s/configmap-scenario.yaml (its data block).

The ConfigMap ships the nightly scenario so the Kubernetes manifests run as they are; a
test (tests/deploy/test_k8s_manifests.py) fails when the two differ.  Run
``python tools/gen_k8s_configmap.py`` (or ``make k8s-configmap``) after editing the scenario.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "nightly.yaml"
CONFIGMAP = ROOT / "deploy" / "k8s" / "configmap-scenario.yaml"
KEY = "  scenario.yaml: |\n"


def render() -> str:
    text = CONFIGMAP.read_text(encoding="utf-8")
    head = text[: text.index(KEY) + len(KEY)]  # everything down to the block's key
    body = SCENARIO.read_text(encoding="utf-8")
    return head + "".join(f"    {line}" if line.strip() else line for line in body.splitlines(True))


if __name__ == "__main__":
    CONFIGMAP.write_text(render(), encoding="utf-8")
    print(f"wrote {CONFIGMAP.relative_to(ROOT)}")
