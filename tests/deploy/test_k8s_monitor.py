"""deploy/k8s/monitor/: lens monitor as a Kubernetes service, validated offline.

Core kinds (Deployment, Service, PVC, ConfigMap) against the Kubernetes OpenAPI schemas of
kubernetes-validate, strict, as tests/deploy/test_k8s_manifests.py does for deploy/k8s/.
The Prometheus Operator's kinds (ServiceMonitor, PrometheusRule) are CRDs that package does
not know: they are validated with the validators generated from the real CRD schemas
(npm ``@kubernetes-models/prometheus-operator``, installed into .cache/node by
tools/install-test-servers) run by node, and, since a CRD's schema accepts unknown fields
(the API server prunes them), every field name is also checked against the package's type
declarations.  Then what the schemas cannot know: one monitor at a time, locked down, the
Service, ServiceMonitor and alert rules agree on names and ports, the generated copies are
current, and the container's arguments start a real ``lens monitor`` that stores its
cycles, answers its liveness probe and stops within the grace period.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lens.scenario.load import parse_scenario
from tests.deploy.promql import RULES

ROOT = Path(__file__).resolve().parents[2]
MONITOR = ROOT / "deploy" / "k8s" / "monitor"
MODELS = ROOT / ".cache" / "node" / "node_modules" / "@kubernetes-models" / "prometheus-operator"
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
IMAGE_UID = 10001
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

Manifest = dict[str, Any]

MANIFESTS = [
    (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
    for path in sorted(MONITOR.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    if doc is not None
]
BY_KIND = {doc["kind"]: doc for _, doc in MANIFESTS}
CORE = [(label, doc) for label, doc in MANIFESTS if doc["kind"] not in CRD_KINDS]
POD = BY_KIND["Deployment"]["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]


def test_the_expected_manifests_are_there() -> None:
    assert sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in MANIFESTS) == [
        ("ConfigMap", "lens-monitor-scenario"),
        ("Deployment", "lens-monitor"),
        ("PersistentVolumeClaim", "lens-monitor-store"),
        ("PrometheusRule", "lens-monitor"),
        ("Service", "lens-monitor"),
        ("ServiceMonitor", "lens-monitor"),
    ]
    for _, doc in MANIFESTS:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "lens"
        assert labels["app.kubernetes.io/component"] == "monitor"
        assert labels["app.kubernetes.io/part-of"] == "lens"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("label", "doc"), CORE, ids=[label for label, _ in CORE])
def test_every_core_manifest_validates_against_the_kubernetes_schemas(
    label: str, doc: Manifest, version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# --- the Prometheus Operator's CRDs ------------------------------------------------------


def _node_validate(tmp_path: Path, docs: list[Manifest]) -> list[str]:
    """The error of each document ("" when valid), from the CRD's generated validator."""
    node = shutil.which("node")
    if node is None or not MODELS.is_dir():
        pytest.skip(
            "node or @kubernetes-models/prometheus-operator missing: run tools/install-test-servers"
        )
    module = (MODELS / "monitoring.coreos.com" / "v1" / "index.js").as_uri()
    script = tmp_path / "validate.mjs"
    script.write_text(
        f"import * as models from {json.dumps(module)};\n"
        "import {readFileSync} from 'node:fs';\n"
        "const out = [];\n"
        "for (const doc of JSON.parse(readFileSync(process.argv[2], 'utf8'))) {\n"
        "  try { new models[doc.kind](doc).validate(); out.push(''); }\n"
        "  catch (e) { out.push(String(e.message || e)); }\n"
        "}\n"
        "console.log(JSON.stringify(out));\n",
        encoding="utf-8",
    )
    (tmp_path / "docs.json").write_text(json.dumps(docs), encoding="utf-8")
    proc = subprocess.run(
        [node, str(script), str(tmp_path / "docs.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    errors: list[str] = json.loads(proc.stdout)
    return errors


def _declared_fields(type_name: str) -> set[str]:
    """The property names of a type of the package's TypeScript declarations."""
    text = (MODELS / "monitoring.coreos.com" / "v1" / f"{type_name}.d.ts").read_text()
    return set(re.findall(r'^    "(\w+)"\??:', text, re.M))


def _unknown_fields(doc: Manifest) -> list[str]:
    """Field names no declaration of the CRD has (the parts lens's manifests use)."""
    spec = doc["spec"]
    checks: list[tuple[str, dict[str, Any]]] = []
    if doc["kind"] == "ServiceMonitor":
        checks.append(("ServiceMonitorSpec", spec))
        checks += [("Endpoint", endpoint) for endpoint in spec["endpoints"]]
    else:
        checks.append(("PrometheusRuleSpec", spec))
        for group in spec["groups"]:
            checks.append(("RuleGroup", group))
            checks += [("Rule", rule) for rule in group["rules"]]
    return [
        f"{type_name}.{key}"
        for type_name, obj in checks
        for key in sorted(set(obj) - _declared_fields(type_name))
    ]


CRDS = [BY_KIND["ServiceMonitor"], BY_KIND["PrometheusRule"]]


def test_the_operator_objects_validate_against_the_crd_schemas(tmp_path: Path) -> None:
    assert _node_validate(tmp_path, CRDS) == ["", ""]
    for doc in CRDS:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert _unknown_fields(doc) == []


def test_the_crd_validation_rejects_a_wrong_type_a_missing_field_and_a_misspelt_one(
    tmp_path: Path,
) -> None:
    # Without this, a validator that accepted anything would pass the test above.
    wrong_type = copy.deepcopy(BY_KIND["ServiceMonitor"])
    wrong_type["spec"]["endpoints"][0]["interval"] = 30
    missing = copy.deepcopy(BY_KIND["ServiceMonitor"])
    del missing["spec"]["selector"]
    bad_for = copy.deepcopy(BY_KIND["PrometheusRule"])
    bad_for["spec"]["groups"][1]["rules"][0]["for"] = "five minutes"
    errors = _node_validate(tmp_path, [wrong_type, missing, bad_for])
    assert "interval must be string" in errors[0]
    assert "spec must have required property selector" in errors[1]
    assert "for must match pattern" in errors[2]
    misspelt = copy.deepcopy(BY_KIND["ServiceMonitor"])
    misspelt["spec"]["endpoints"][0]["intervall"] = misspelt["spec"]["endpoints"][0].pop("interval")
    assert _unknown_fields(misspelt) == ["Endpoint.intervall"]


# --- what the schemas cannot know --------------------------------------------------------


def test_one_monitor_at_a_time_keeping_its_store() -> None:
    spec = BY_KIND["Deployment"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # a rolling update would overlap two
    assert BY_KIND["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in POD["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    args = CONTAINER["args"]
    store = args[args.index("--store") + 1]
    assert volumes[mounts[store]]["persistentVolumeClaim"]["claimName"] == "lens-monitor-store"
    assert volumes[mounts["/etc/lens"]]["configMap"]["name"] == "lens-monitor-scenario"
    assert args[:2] == ["monitor", "/etc/lens/scenario.yaml"]
    assert args[args.index("--listen") + 1] == "0.0.0.0:9464"


def test_the_pod_is_locked_down() -> None:
    ctx = POD["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == ctx["runAsGroup"] == ctx["fsGroup"] == IMAGE_UID
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD["automountServiceAccountToken"] is False
    sc = CONTAINER["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in POD["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    res = CONTAINER["resources"]
    assert set(res["requests"]) == set(res["limits"]) == {"cpu", "memory"}
    assert CONTAINER["envFrom"] == [{"secretRef": {"name": "lens-provider-keys", "optional": True}}]
    for env in CONTAINER.get("env", []):
        assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", env["name"]), env


def test_the_probes_and_the_grace_period_follow_the_monitor_contract() -> None:
    # docs/monitoring.md: a stopped cycle gets 10 s to finish; give the pod at least 30 s.
    assert POD["terminationGracePeriodSeconds"] >= 30
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # readiness must not hide an unhealthy monitor from Prometheus
    assert "httpGet" not in CONTAINER["readinessProbe"]
    (port,) = CONTAINER["ports"]
    assert port == {"name": "metrics", "containerPort": 9464, "protocol": "TCP"}


def test_service_servicemonitor_and_rules_agree() -> None:
    service = BY_KIND["Service"]
    pod_labels = BY_KIND["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port == {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    monitor = BY_KIND["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"
    # The Operator names the job after the Service; LensMonitorDown selects that job.
    assert "jobLabel" not in monitor
    assert f'up{{job="{service["metadata"]["name"]}"}}' in RULES.read_text(encoding="utf-8")


def test_the_generated_copies_are_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "gen_k8s_monitor.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rendered: dict[Path, str] = gen.render()
    assert set(rendered) == {MONITOR / "configmap-scenario.yaml", MONITOR / "prometheusrule.yaml"}
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: run python tools/gen_k8s_monitor.py"
        )
    scenario = (ROOT / "scenarios" / "monitor.yaml").read_text(encoding="utf-8")
    assert BY_KIND["ConfigMap"]["data"]["scenario.yaml"] == scenario
    assert BY_KIND["PrometheusRule"]["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))


def test_the_configmap_scenario_is_a_valid_probe_with_a_monitor_section(tmp_path: Path) -> None:
    text = BY_KIND["ConfigMap"]["data"]["scenario.yaml"]
    (tmp_path / "scenario.yaml").write_text(text, encoding="utf-8")
    scenario = parse_scenario(
        text, file="configmap-scenario.yaml:scenario.yaml", base_dir=tmp_path, env={}
    )
    assert scenario.monitor is not None
    assert not re.search(r"sk-[A-Za-z0-9_-]{8,}|[A-Za-z0-9+/_-]{40,}", text)


@pytest.mark.slow
def test_the_container_arguments_run_a_monitor_that_stores_answers_and_stops_in_grace(
    tmp_path: Path,
) -> None:
    # The pod's own argv, its paths moved into tmp_path and its port onto loopback.
    etc, store = tmp_path / "etc", tmp_path / "store"
    etc.mkdir()
    (etc / "scenario.yaml").write_text(BY_KIND["ConfigMap"]["data"]["scenario.yaml"])
    args = [
        a.replace("/etc/lens", str(etc))
        .replace("/var/lib/lens", str(store))
        .replace("0.0.0.0:9464", "127.0.0.1:0")
        for a in CONTAINER["args"]
    ]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "lens"), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        while not list(store.glob("cycle-*.json")):  # the first cycle, stored
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        (url,) = re.findall(r"listening on (http://[\d.:]+)", log.read_text())
        probe = CONTAINER["livenessProbe"]["httpGet"]["path"]
        with urllib.request.urlopen(url + probe, timeout=5) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=POD["terminationGracePeriodSeconds"]) == 0, log.read_text()
        assert time.monotonic() - started < POD["terminationGracePeriodSeconds"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
