"""Providers' network fields: proxy, tls, keep_alive; positioned errors, compiled settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens.errors import PlanError
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, ProxySpec, TlsSpec
from lens.redact import Redactor
from lens.scenario import parse_scenario
from tests.scenario.helpers import BASE, only_problem, parse

SIM = "  sim:\n    type: simulated\n"
HOSTED = """\
  p:
    type: openai-compatible
    base_url: https://api.example.com/v1
    model: m
"""


def hosted(extra: str = "", block: str = HOSTED) -> str:
    """BASE with one hosted provider ``p`` whose extra fields start on line 8, column 5."""
    text = BASE.replace(SIM, block + extra)
    return text.replace("requests: 2", "requests: 2\n    providers: [p]")


def plan_of(text: str, env: dict[str, str] | None = None, folder: Path | None = None) -> Plan:
    file = str(folder / "s.yaml") if folder is not None else "s.yaml"
    scenario = parse_scenario(text, file=file, env={}, base_dir=folder or Path("."))
    return compile_plan(scenario, env=env or {})


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("socks5://u:pw@h:1080", "socks5://u:***@h:1080: SOCKS proxies are not supported"),
        ("socks5h://h:1080", "SOCKS proxies are not supported"),
        ("https://p:3128", "TLS to the proxy itself (an https:// proxy URL) is not supported"),
        ("http://p:99999", "the port is not a number from 0 to 65535"),
        ("http://p:3128/path", "a proxy URL is scheme, host and port only"),
        ("true", "expected an HTTP proxy URL such as http://proxy.example:3128, or none"),
        ("ftp://p", "unsupported proxy scheme 'ftp'"),
    ],
)
def test_bad_proxy_is_positioned_and_masked(value: str, message: str) -> None:
    problem = only_problem(hosted(f"    proxy: {value}\n"))
    assert problem.startswith("s.yaml:8:12: providers.p.proxy: ")
    assert message in problem
    assert "pw" not in problem


@pytest.mark.parametrize("value", ["none", "None", "false"])
def test_proxy_none_means_direct(value: str) -> None:
    plan = plan_of(hosted(f"    proxy: {value}\n"), env={"HTTPS_PROXY": "http://p:3128"})
    assert plan.providers["p"].proxy == ProxySpec(mode="none")


def test_tls_field_errors_are_positioned() -> None:
    problem = only_problem(hosted("    tls:\n      client_key: k.pem\n"))
    assert problem.startswith("s.yaml:9:7: providers.p.tls.client_key: client_key needs")
    problem = only_problem(hosted("    tls:\n      verify: false\n      ca_bundle: x.pem\n"))
    assert "providers.p.tls.verify: ca_bundle is never used with verify: false" in problem
    problem = only_problem(hosted("    tls:\n      verify: 'no'\n"))
    assert problem.startswith("s.yaml:9:15: providers.p.tls.verify:")
    problem = only_problem(hosted("    tls:\n      verfy: false\n"))
    assert "unknown field 'verfy' (did you mean 'verify'?)" in problem


def test_keep_alive_is_strict_and_simulated_accepts_it() -> None:
    assert "providers.p.keep_alive: expected true or false" in only_problem(
        hosted("    keep_alive: 'no'\n")
    )
    scenario = parse(BASE.replace(SIM, SIM + "    keep_alive: false\n"))
    plan = compile_plan(scenario, env={})
    assert plan.providers["sim"].keep_alive is False
    assert plan.providers["sim"].proxy is None  # never through a proxy
    # ... and it takes no proxy or tls: it is lens's own loopback server.
    assert "unknown field 'proxy'" in only_problem(
        BASE.replace(SIM, SIM + "    proxy: http://p:1\n")
    )


# -- compiled settings ----------------------------------------------------------------------


def test_environment_proxies_with_precedence_and_no_proxy() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://user:secret@lower:3128",
        "NO_PROXY": "localhost",
    }
    spec = plan_of(hosted(), env).providers["p"]
    assert spec.proxy is not None
    assert spec.proxy.mode == "env"
    ((name, url),) = spec.proxy.env
    assert name == "HTTPS_PROXY"
    assert url.reveal() == "http://user:secret@lower:3128"
    rules = spec.proxy.rules()
    chosen = rules.for_origin("https", "api.example.com", 443)
    assert chosen is not None
    assert chosen.host == "lower"
    assert chosen.password == "secret"
    assert rules.for_origin("https", "localhost", 443) is None


def test_all_proxy_is_the_fallback_and_http_proxy_is_for_http_only() -> None:
    env = {"ALL_PROXY": "http://all:1", "HTTP_PROXY": "http://plain:2"}
    spec = plan_of(hosted(), env).providers["p"]
    assert spec.proxy is not None
    assert spec.proxy.env[0][0] == "ALL_PROXY"
    http = HOSTED.replace("https://api", "http://api")
    spec = plan_of(hosted(block=http), env).providers["p"]
    assert spec.proxy is not None
    assert spec.proxy.env[0][0] == "HTTP_PROXY"
    assert plan_of(hosted(), {}).providers["p"].proxy is None


def test_socks_in_the_environment_is_an_error_only_where_it_applies() -> None:
    env = {"ALL_PROXY": "socks5://u:pw@h:1080"}
    with pytest.raises(PlanError) as info:
        plan_of(hosted(), env)
    (problem,) = info.value.problems
    assert str(problem).startswith("s.yaml:6:15: providers.p.base_url: ALL_PROXY=socks5://u:***")
    assert "SOCKS proxies are not supported" in str(problem)
    assert "pw" not in str(problem)
    # Bypassed by NO_PROXY, or by proxy: none: never used, so no error.
    plan_of(hosted(), {**env, "NO_PROXY": ".example.com"})
    plan_of(hosted("    proxy: none\n"), env)


def test_plan_json_shows_proxies_masked_and_tls(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    text = hosted("    proxy: http://bob:hunter2@proxy.corp:3128\n    tls: {ca_bundle: ca.pem}\n")
    plan = plan_of(text, folder=tmp_path)
    doc = plan_to_dict(plan)
    net = doc["providers"][0]["network"]
    assert net["proxy"] == {"url": "http://bob:***@proxy.corp:3128", "source": "scenario"}
    ca_file = str(tmp_path / "ca.pem")
    assert net["tls"] == {"verify": True, "ca": "tls.ca_bundle", "ca_file": ca_file}
    assert net["keep_alive"] is True
    assert "hunter2" not in repr(plan)
    assert "hunter2" not in str(doc)
    env = {"https_proxy": "http://bob:hunter2@proxy.corp:3128", "NO_PROXY": "10.0.0.0/8"}
    doc = plan_to_dict(plan_of(hosted(), env))
    assert doc["providers"][0]["network"]["proxy"] == {
        "url": "http://bob:***@proxy.corp:3128",
        "source": "https_proxy",
        "no_proxy": "10.0.0.0/8",
    }
    doc = plan_to_dict(plan_of(hosted(), {**env, "NO_PROXY": "example.com"}))
    assert doc["providers"][0]["network"]["proxy"]["url"] is None
    assert "hunter2" not in str(doc)


def test_tls_paths_resolve_against_the_scenario_folder(tmp_path: Path) -> None:
    for name in ("ca.pem", "me.pem", "me.key"):
        (tmp_path / name).write_text("x")
    tls = "    tls:\n      ca_bundle: ca.pem\n      client_cert: me.pem\n      client_key: me.key\n"
    spec = plan_of(hosted(tls), folder=tmp_path).providers["p"]
    assert spec.tls == TlsSpec(
        ca_file=str(tmp_path / "ca.pem"),
        ca_source="tls.ca_bundle",
        client_cert=str(tmp_path / "me.pem"),
        client_key=str(tmp_path / "me.key"),
    )
    (tmp_path / "me.key").unlink()
    with pytest.raises(PlanError) as info:
        plan_of(hosted(tls), folder=tmp_path)
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{tmp_path / 's.yaml'}:11:19: providers.p.tls.client_key:")
    assert "no such file" in str(problem)


def test_ssl_cert_file_and_dir_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "corp.pem").write_text("x")
    env = {"SSL_CERT_FILE": str(tmp_path / "corp.pem"), "SSL_CERT_DIR": str(tmp_path)}
    spec = plan_of(hosted(), env).providers["p"]
    assert spec.tls == TlsSpec(
        ca_file=str(tmp_path / "corp.pem"),
        ca_dir=str(tmp_path),
        ca_source="SSL_CERT_FILE + SSL_CERT_DIR",
    )
    # A provider's own ca_bundle wins.
    (tmp_path / "mine.pem").write_text("x")
    spec = plan_of(hosted("    tls: {ca_bundle: mine.pem}\n"), env, tmp_path).providers["p"]
    assert spec.tls.ca_file == str(tmp_path / "mine.pem")
    assert spec.tls.ca_dir is None
    with pytest.raises(PlanError, match=r"SSL_CERT_FILE=/nowhere\.pem do not exist"):
        plan_of(hosted(), {"SSL_CERT_FILE": "/nowhere.pem"})


def test_verify_false_is_a_plan_warning() -> None:
    plan = plan_of(hosted("    tls: {verify: false}\n"))
    assert plan.providers["p"].tls.verify is False
    warning = plan.warnings[0]
    assert warning.startswith("provider p: tls.verify is false")
    assert not plan_of(hosted()).warnings[0].startswith("provider p: tls")
    assert plan_to_dict(plan)["providers"][0]["network"]["tls"] == {"verify": False}


def test_proxy_and_tls_read_the_environment_and_the_password_is_redacted() -> None:
    env = {"CORP_PROXY": "http://bob:hunter2@proxy.corp:3128"}
    text = hosted("    proxy: ${CORP_PROXY}\n")
    scenario = parse_scenario(text, file="s.yaml", env=env)
    plan = compile_plan(scenario, env={})
    proxy = plan.providers["p"].proxy
    assert proxy is not None
    assert proxy.url is not None
    assert proxy.url.reveal() == env["CORP_PROXY"]
    redact = Redactor.for_plan(plan, {})
    assert "hunter2" not in redact("proxy said: bad password hunter2 for bob")
    # From the environment too.
    plan = plan_of(hosted(), {"HTTPS_PROXY": "http://bob:s3cret-pw@proxy.corp:3128"})
    assert "s3cret-pw" not in Redactor.for_plan(plan, {})("echo s3cret-pw")
