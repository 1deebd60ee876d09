"""deploy/k8s/: every manifest valid for Kubernetes, offline, and true to lens's contract.

The schemas are the Kubernetes OpenAPI schemas that ``kubernetes-validate`` bundles (one
set per minor version, strict: an unknown or misspelt field is an error, not ignored as
the API server's lenient decoding might). Validation reads only files of that package;
the network is cut for the test to prove it. Then what the schemas cannot know: the
Indexed Job's N agrees with its ``--shard auto/N``, no key sits in the ConfigMap, the pods
are locked down, the CronJob never overlaps itself, the scenario is a valid lens scenario,
and the pods' shell wrappers call lens as the docs say (run against a stand-in ``lens``).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lens.scenario.load import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the manifests need (backoffLimitPerIndex: 1.29), and the newest the
# installed kubernetes-validate knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
IMAGE_UID = 10001  # the Dockerfile's lens user (tests/deploy/test_dockerfile.py pins it)

Manifest = dict[str, Any]


def _manifests() -> list[tuple[str, Manifest]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc is not None
    ]


MANIFESTS = _manifests()
BY_NAME = {doc["metadata"]["name"]: doc for _, doc in MANIFESTS}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _pod_specs() -> list[tuple[str, Manifest]]:
    specs = []
    for label, doc in MANIFESTS:
        if doc["kind"] == "Job":
            specs.append((label, doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            specs.append((label, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


POD_SPECS = _pod_specs()


def test_the_expected_manifests_are_there() -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in MANIFESTS)
    assert kinds == [
        ("ConfigMap", "lens-scenario"),
        ("CronJob", "lens-nightly"),
        ("Job", "lens-merge"),
        ("Job", "lens-shards"),
        ("PersistentVolumeClaim", "lens-results"),
        ("Secret", "lens-provider-keys"),
    ]


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("label", "doc"), MANIFESTS, ids=[label for label, _ in MANIFESTS])
def test_every_manifest_validates_against_the_kubernetes_schemas(
    label: str, doc: Manifest, version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.usefixtures("no_network")
def test_the_validation_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    # Without this, a validator that accepted anything would pass the test above.
    job = copy.deepcopy(BY_NAME["lens-shards"])
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError, match="completionMod"):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)
    job = copy.deepcopy(BY_NAME["lens-shards"])
    job["spec"]["parallelism"] = "4"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)


def _script(pod: Manifest) -> str:
    (container,) = pod["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    assert isinstance(script, str)
    return script


def test_the_indexed_job_runs_n_shards_at_once_and_never_retries_one() -> None:
    job = BY_NAME["lens-shards"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    script = _script(spec["template"]["spec"])
    (n,) = re.findall(r"--shard auto/(\d+)\b", script)
    assert spec["parallelism"] == spec["completions"] == int(n) >= 2
    assert spec["backoffLimitPerIndex"] == 0  # a re-run shard would send its load twice
    assert "backoffLimit" not in spec  # it would stop every shard at the first failure
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert '--start-at "$LENS_START_AT"' in script
    assert '-o "$run/shard-$JOB_COMPLETION_INDEX.json"' in script


def test_the_merge_job_reads_the_folder_the_shards_write() -> None:
    def run_dir(name: str) -> str:
        script = _script(_pod(name))
        (line,) = [s for s in script.splitlines() if s.startswith("run=")]
        return line

    assert run_dir("lens-merge") == run_dir("lens-shards")
    merge = BY_NAME["lens-merge"]["spec"]
    assert 'exec lens merge "$run"/shard-*.json -o "$run/merged.json"' in _script(
        merge["template"]["spec"]
    )
    # lens's own verdicts (exit 1-5) end the Job; only a lost pod is retried
    (verdicts, lost) = merge["podFailurePolicy"]["rules"]
    assert verdicts["action"] == "FailJob"
    assert verdicts["onExitCodes"]["values"] == [1, 2, 3, 4, 5]
    assert lost == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_the_cronjob_never_overlaps_itself_and_never_retries() -> None:
    spec = BY_NAME["lens-nightly"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert "parallelism" not in job
    assert "completions" not in job
    script = _script(job["template"]["spec"])
    assert "lens run /etc/lens/scenario.yaml" in script
    assert '-o "$out"' in script
    assert 'out="$dir/' in script
    assert "dir=/results/nightly" in script


@pytest.mark.parametrize(("label", "pod"), POD_SPECS, ids=[label for label, _ in POD_SPECS])
def test_every_pod_is_locked_down(label: str, pod: Manifest) -> None:
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == ctx["runAsGroup"] == ctx["fsGroup"] == IMAGE_UID
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]  # the one writable scratch space
        assert volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"] == ("lens-results")
        res = container["resources"]
        assert set(res) == {"requests", "limits"}
        assert set(res["requests"]) == set(res["limits"]) == {"cpu", "memory"}
        # keys come from the Secret only, as a whole, never as literal env values
        assert container["envFrom"] == [
            {"secretRef": {"name": "lens-provider-keys", "optional": True}}
        ]
        for env in container.get("env", []):
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", env["name"]), env


def test_the_shard_pods_have_guaranteed_qos() -> None:
    # requests = limits: a latency measurement must not be CPU-throttled below what it asked
    (container,) = BY_NAME["lens-shards"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"]


def test_every_object_and_pod_carries_the_lens_labels() -> None:
    templates: list[Manifest] = []
    for _, doc in MANIFESTS:
        templates.append(doc["metadata"])
        if doc["kind"] == "Job":
            templates.append(doc["spec"]["template"]["metadata"])
        if doc["kind"] == "CronJob":
            templates.append(doc["spec"]["jobTemplate"]["metadata"])
            templates.append(doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"])
    for meta in templates:
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "lens"
        assert labels["app.kubernetes.io/part-of"] == "lens"
        assert labels["app.kubernetes.io/component"]


def test_the_results_volume_is_shared_by_every_pod() -> None:
    assert BY_NAME["lens-results"]["spec"]["accessModes"] == ["ReadWriteMany"]


# --- the scenario and the keys ------------------------------------------------------------

SCENARIO = BY_NAME["lens-scenario"]["data"]["scenario.yaml"]
SECRET_KEYS = BY_NAME["lens-provider-keys"]["stringData"]
# What a provider key looks like: OpenAI / Anthropic (sk-...), Google (AIza...), AWS key
# ids, bearer tokens, and any long run of key-like characters.
KEYLIKE = re.compile(
    r"sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|AKIA[0-9A-Z]{16}|[A-Za-z0-9+/_-]{40,}"
)


def test_the_configmap_holds_the_nightly_scenario_verbatim() -> None:
    nightly = (ROOT / "scenarios" / "nightly.yaml").read_text(encoding="utf-8")
    assert nightly == SCENARIO, (
        "deploy/k8s/configmap-scenario.yaml is stale: run python tools/gen_k8s_configmap.py"
    )


def test_the_configmap_scenario_is_a_valid_lens_scenario(tmp_path: Path) -> None:
    # As the pods see it: alone in /etc/lens, with the Secret's variables as environment.
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    env = dict.fromkeys(SECRET_KEYS, "placeholder") | {"HOME": "/tmp"}
    scenario = parse_scenario(
        SCENARIO, file="configmap-scenario.yaml:scenario.yaml", base_dir=tmp_path, env=env
    )
    assert scenario.name == "nightly"


def test_the_configmap_holds_no_secret() -> None:
    config = BY_NAME["lens-scenario"]
    assert set(config) == {"apiVersion", "kind", "metadata", "data"}
    for line in SCENARIO.splitlines():
        code = line.split("#", 1)[0]
        assert not KEYLIKE.search(code), line
        # a key-bearing field names a variable, never a value
        match = re.match(r"\s*(api_key|token|password|secret\w*|\w*_key)\s*:\s*(\S+)", code)
        if match:
            assert re.fullmatch(r"['\"]?\$\{[A-Z0-9_]+\}['\"]?", match.group(2)), line
    for value in SECRET_KEYS.values():  # nor the template's placeholders
        assert value not in SCENARIO


def test_the_secret_template_holds_placeholders_only() -> None:
    secret = BY_NAME["lens-provider-keys"]
    assert "data" not in secret  # base64 values would hide what is there
    for name, value in secret["stringData"].items():
        if re.search(r"KEY|TOKEN|SECRET|PASSWORD", name):
            assert value == "REPLACE_ME", name
        assert not KEYLIKE.search(value), name


def test_the_key_bearing_fields_of_the_scenario_name_only_secret_variables() -> None:
    for name in re.findall(r"\$\{([A-Z0-9_]+)", SCENARIO.split("\nproviders:", 1)[1]):
        line = next(s for s in SCENARIO.splitlines() if "${" + name in s)
        if line.lstrip().startswith("#"):
            continue  # the commented example of a real endpoint
        assert name in SECRET_KEYS, f"{name} is not in the Secret template"


# --- the pods' shell wrappers, against a stand-in lens ----------------------------------


@pytest.fixture
def fake_lens(tmp_path: Path) -> Path:
    """A `lens` on PATH that records its argv and exits with $FAKE_EXIT."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    lens = bindir / "lens"
    lens.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_ARGV"\nexit "${FAKE_EXIT:-0}"\n',
        encoding="utf-8",
    )
    lens.chmod(lens.stat().st_mode | stat.S_IEXEC)
    return bindir


def _pod(name: str) -> Manifest:
    spec = BY_NAME[name]["spec"]
    spec = spec["jobTemplate"]["spec"] if "jobTemplate" in spec else spec
    pod: Manifest = spec["template"]["spec"]
    return pod


def _run_script(
    name: str, fake_lens: Path, tmp_path: Path, exit_code: int, **env: str
) -> tuple[int, list[str], str]:
    pod = _pod(name)
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    script = _script(pod).replace("/results", str(results))
    argv_file = tmp_path / "argv"
    argv_file.unlink(missing_ok=True)
    sh = shutil.which("sh")
    assert sh is not None
    proc = subprocess.run(
        [sh, "-c", script],
        env={
            "PATH": f"{fake_lens}{os.pathsep}{os.environ['PATH']}",
            "FAKE_ARGV": str(argv_file),
            "FAKE_EXIT": str(exit_code),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    argv = argv_file.read_text(encoding="utf-8").splitlines() if argv_file.exists() else []
    return proc.returncode, [a.replace(str(results), "/results") for a in argv], proc.stderr


START = "2026-12-06T21:00:00Z"
RUN_DIR = "/results/runs/2026-12-06T21-00-00Z"


@pytest.mark.parametrize(("lens_exit", "pod_exit"), [(0, 0), (1, 0), (3, 0), (2, 2), (5, 5)])
def test_a_shard_pod_runs_its_shard_and_succeeds_whenever_its_results_are_written(
    fake_lens: Path, tmp_path: Path, lens_exit: int, pod_exit: int
) -> None:
    code, argv, _ = _run_script(
        "lens-shards",
        fake_lens,
        tmp_path,
        lens_exit,
        LENS_START_AT=START,
        JOB_COMPLETION_INDEX="2",
    )
    assert code == pod_exit
    assert argv == [
        "run",
        "/etc/lens/scenario.yaml",
        "--shard",
        "auto/4",
        "--start-at",
        START,
        "-o",
        f"{RUN_DIR}/shard-2.json",
    ]


@pytest.mark.parametrize(("start", "says"), [("", "is empty"), ("+30s", "relative")])
def test_a_shard_pod_refuses_a_start_that_is_missing_or_not_shared(
    fake_lens: Path, tmp_path: Path, start: str, says: str
) -> None:
    code, argv, stderr = _run_script(
        "lens-shards", fake_lens, tmp_path, 0, LENS_START_AT=start, JOB_COMPLETION_INDEX="0"
    )
    assert (code, argv) == (2, [])
    assert says in stderr


@pytest.mark.parametrize("lens_exit", [0, 1, 2, 3, 4, 5])
def test_the_merge_pod_merges_every_shard_file_and_exits_as_lens_merge(
    fake_lens: Path, tmp_path: Path, lens_exit: int
) -> None:
    run = tmp_path / "results" / "runs" / "2026-12-06T21-00-00Z"
    run.mkdir(parents=True)
    for i in range(3):
        (run / f"shard-{i}.json").write_text("{}", encoding="utf-8")
    (run / ".shard-3.json.tmp").write_text("{}", encoding="utf-8")  # a write in progress
    code, argv, _ = _run_script("lens-merge", fake_lens, tmp_path, lens_exit, LENS_START_AT=START)
    assert code == lens_exit
    assert argv == [
        "merge",
        *(f"{RUN_DIR}/shard-{i}.json" for i in range(3)),
        "-o",
        f"{RUN_DIR}/merged.json",
        "--format",
        "markdown",
    ]


def test_the_nightly_pod_promotes_a_passing_night_to_the_baseline(
    fake_lens: Path, tmp_path: Path
) -> None:
    nightly = tmp_path / "results" / "nightly"
    # The stand-in writes the results file lens would (its content: the exit code it gives).
    fake = fake_lens / "lens"
    fake.write_text(
        fake.read_text(encoding="utf-8").replace(
            "exit",
            'out=$(printf "%s\\n" "$@" | sed -n "/^-o$/{n;p}")\necho "$FAKE_EXIT" > "$out"\nexit',
        ),
        encoding="utf-8",
    )
    code, argv, _ = _run_script("lens-nightly", fake_lens, tmp_path, 0)
    assert code == 0
    assert argv[:3] == ["run", "/etc/lens/scenario.yaml", "-o"]
    assert re.fullmatch(r"/results/nightly/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json", argv[3])
    assert "--baseline" not in argv  # the first night has none
    assert (nightly / "baseline.json").read_text(encoding="utf-8") == "0\n"

    code, argv, _ = _run_script("lens-nightly", fake_lens, tmp_path, 1)
    assert code == 1  # the Job fails: an SLA failed or a statistic regressed
    assert argv[-2:] == ["--baseline", "/results/nightly/baseline.json"]
    assert (nightly / "baseline.json").read_text(encoding="utf-8") == "0\n"  # kept
    assert not list(nightly.glob(".*.tmp"))
