"""A provider's network settings in the plan: proxy, TLS verification, keep-alive.

Environment variables (the proxy variables, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``) are read
here, when the plan is compiled, so ``lens plan`` shows what a run will use.  Paths in
``tls:`` are resolved against the scenario's folder and must name existing files; their
contents are loaded when the run starts (lens.run.executor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lens.netconfig import NoProxy, ProxyURLError, env_proxies, mask_proxy_url, parse_proxy_url
from lens.plan.model import ProviderSpec, ProxySpec, Secret, TlsSpec
from lens.scenario.model import AnyProvider, SimulatedProvider
from lens.scenario.yaml_nodes import PathT

Report = Callable[..., None]  # (message, path, *, key=False): a positioned problem

CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def with_network(
    out: ProviderSpec,
    pid: str,
    spec: AnyProvider,
    *,
    env: Mapping[str, str],
    source_file: str,
    problem: Report,
) -> ProviderSpec:
    """``out`` with the proxy, TLS and keep-alive settings of scenario provider ``spec``."""
    if isinstance(spec, SimulatedProvider):
        # lens's own loopback server: never through a proxy, plain http.
        return out if spec.keep_alive else replace(out, keep_alive=False)
    where: PathT = ("providers", pid)
    try:
        scheme, host, port = _origin_of(out.base_url)
    except ValueError as exc:  # "http://[::1/v1": an unclosed IPv6 bracket
        problem(f"base_url is not a valid URL ({exc})", (*where, "base_url"))
        return out
    written = spec.proxy.get_secret_value() if spec.proxy is not None else None
    proxy = _proxy(written, env, scheme, host, port)
    if isinstance(proxy, str):
        problem(
            f"{proxy}; set proxy: none on this provider, or add its host to NO_PROXY",
            (*where, "base_url") if out.base_url else where,
            key=out.base_url is None,
        )
        proxy = ProxySpec(mode="none")
    base = Path(source_file).parent if source_file and not source_file.startswith("<") else None
    tls = _tls(spec, scheme, env, base, where, problem)
    return replace(out, proxy=proxy, tls=tls, keep_alive=spec.keep_alive)


def _origin_of(base_url: str | None) -> tuple[str, str | None, int]:
    """Scheme, host and port the provider's requests go to (no base_url: an AWS or other
    vendor endpoint chosen by the adapter, always https)."""
    if base_url is None:
        return "https", None, 443
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def _proxy(
    written: str | None, env: Mapping[str, str], scheme: str, host: str | None, port: int
) -> ProxySpec | str | None:
    """The provider's proxy setting (None: direct, no variable applies), or a problem
    message (never holding a password)."""
    if written is not None:
        if written == "none":
            return ProxySpec(mode="none")
        return ProxySpec(mode="url", url=Secret(written, source=mask_proxy_url(written)))
    # The environment: the one variable this provider's scheme reads, so a SOCKS
    # ALL_PROXY meant for other tools only matters to providers that would use it.
    found = env_proxies(env)
    name = "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"
    chosen = found.get(name) or found.get("ALL_PROXY")
    no_proxy = found["NO_PROXY"][1] if "NO_PROXY" in found else ""
    if chosen is None:
        return None  # direct
    variable, value = chosen
    key = name if name in found else "ALL_PROXY"
    bypassed = host is not None and NoProxy.parse(no_proxy).matches(host, port)
    if not bypassed:
        try:
            parse_proxy_url(value)
        except ProxyURLError as exc:
            return f"{variable}={exc}"
    secret = Secret(value, source=f"{variable}={mask_proxy_url(value)}")
    return ProxySpec(mode="env", env=((key, secret),), no_proxy=no_proxy)


def _tls(
    spec: Any,
    scheme: str,
    env: Mapping[str, str],
    base: Path | None,
    where: PathT,
    problem: Report,
) -> TlsSpec:
    settings = spec.tls
    here = (*where, "tls")

    def resolve(written: str, field: str) -> str:
        path = Path(written).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            problem(f"no such file: {path}", (*here, field))
        return str(path)

    out = TlsSpec()
    if settings is not None and settings.ca_bundle is not None:
        out = TlsSpec(ca_file=resolve(settings.ca_bundle, "ca_bundle"), ca_source="tls.ca_bundle")
    elif settings is None or settings.verify:
        ca_file = env.get("SSL_CERT_FILE") or None
        ca_dir = env.get("SSL_CERT_DIR") or None
        if ca_file is not None or ca_dir is not None:
            names = [n for n in CA_VARIABLES if env.get(n)]
            bad = (ca_file is not None and not Path(ca_file).is_file()) or (
                ca_dir is not None and not Path(ca_dir).is_dir()
            )
            if bad and scheme == "https":
                problem(
                    "the CA certificates named by "
                    + " and ".join(f"{n}={env[n]}" for n in names)
                    + " do not exist",
                    where,
                    key=True,
                )
            out = TlsSpec(ca_file=ca_file, ca_dir=ca_dir, ca_source=" + ".join(names))
    if settings is None:
        return out
    return replace(
        out,
        client_cert=resolve(settings.client_cert, "client_cert") if settings.client_cert else None,
        client_key=resolve(settings.client_key, "client_key") if settings.client_key else None,
        verify=settings.verify,
    )


def network_warnings(providers: Sequence[ProviderSpec]) -> list[str]:
    """What a plan and every run must say about providers' network settings."""
    return [
        f"provider {p.id}: tls.verify is false: its server's certificate and host name are "
        "not checked, so anyone on the network path can read and alter the traffic, the "
        "credentials included"
        for p in providers
        if not p.tls.verify
    ]
