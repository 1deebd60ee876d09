"""TLS settings end to end against trustme servers on 127.0.0.1: private CAs (tls.ca_bundle,
SSL_CERT_FILE), client certificates, verify: false, and failures that say why."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
import trustme

from lens.errors import ProviderError
from lens.netconfig import TlsOptions, TlsSetupError, build_ssl_context
from lens.plan.compile import compile_plan
from lens.plan.model import TlsSpec
from lens.run.executor import StageRunner
from lens.run.http11 import LeanHTTP11Transport
from lens.scenario import parse_scenario
from tests.run.netkit import Conn, Origin, ThreadedTlsOrigin, start_origin

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

SCENARIO = """\
version: 1
name: t
providers:
  p:
    type: openai-compatible
    base_url: {url}
    model: m
{extra}
prompts:
  - id: q
    messages:
      - {{role: user, content: hi}}
load:
  - id: s
    pattern: burst
    requests: 1
"""


async def answer_ok(conn: Conn) -> None:
    while await conn.read_request() is not None:
        await conn.send(OK)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_ctx(ca: trustme.CA, *names: str, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost", "127.0.0.1"))).configure_cert(ctx)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(ctx)
    return ctx


async def get(ctx: ssl.SSLContext, url: str) -> bytes:
    transport = LeanHTTP11Transport(ssl_context=ctx)
    try:
        response = await transport.handle_async_request(httpx.Request("GET", url))
        try:
            return await response.aread()
        finally:
            await response.aclose()
    finally:
        await transport.aclose()


def plan_tls(
    tmp_path: Path, url: str, extra: str = "", env: dict[str, str] | None = None
) -> TlsSpec:
    text = SCENARIO.format(url=url, extra=extra)
    scenario = parse_scenario(text, file=str(tmp_path / "s.yaml"), env={}, base_dir=tmp_path)
    return compile_plan(scenario, env=env or {}).providers["p"].tls


@pytest.fixture
async def origin(nursery: trio.Nursery, ca: trustme.CA) -> Origin:
    return await start_origin(nursery, answer_ok, ssl_context=server_ctx(ca))


async def test_private_ca_via_ca_bundle(tmp_path: Path, ca: trustme.CA, origin: Origin) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "corp-ca.pem"))
    tls = plan_tls(tmp_path, origin.url("localhost"), "    tls: {ca_bundle: corp-ca.pem}")
    assert tls.ca_file == str(tmp_path / "corp-ca.pem")
    assert await get(build_ssl_context(tls.options()), origin.url("localhost")) == b"ok"
    assert await get(build_ssl_context(tls.options()), origin.url("127.0.0.1")) == b"ok"


async def test_private_ca_via_ssl_cert_file(tmp_path: Path, ca: trustme.CA, origin: Origin) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "bundle.pem"))
    env = {"SSL_CERT_FILE": str(tmp_path / "bundle.pem")}
    tls = plan_tls(tmp_path, origin.url("localhost"), env=env)
    assert tls.ca_source == "SSL_CERT_FILE"
    assert await get(build_ssl_context(tls.options()), origin.url("localhost")) == b"ok"


async def test_default_trust_rejects_a_private_ca(origin: Origin) -> None:
    with pytest.raises(httpx.ConnectError) as info:
        await get(build_ssl_context(TlsOptions()), origin.url("localhost"))
    message = str(info.value)
    assert message.startswith(f"TLS to localhost:{origin.port} failed: certificate verify failed: ")
    assert "unable to get local issuer certificate" in message


async def test_self_signed_certificate_is_named(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A leaf that is its own issuer: OpenSSL's 'self-signed certificate'."""
    leaf = trustme.CA()  # a CA certificate used as the server's own: self-signed
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*_write_self_signed(leaf, tmp_path))
    origin = await start_origin(nursery, answer_ok, ssl_context=ctx)
    with pytest.raises(
        httpx.ConnectError, match=r"certificate verify failed: self.signed certificate"
    ):
        await get(build_ssl_context(TlsOptions()), origin.url("localhost"))


def _write_self_signed(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "self.pem", tmp_path / "self.key"
    ca.cert_pem.write_to_path(str(cert))
    ca.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


async def test_wrong_hostname_is_named(nursery: trio.Nursery, ca: trustme.CA) -> None:
    origin = await start_origin(nursery, answer_ok, ssl_context=server_ctx(ca, "api.example.org"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with pytest.raises(httpx.ConnectError) as info:
        await get(ctx, origin.url("localhost"))
    assert str(info.value) == (
        f"TLS to localhost:{origin.port} failed: hostname mismatch: certificate is not valid "
        "for 'localhost'"
    )
    with pytest.raises(
        httpx.ConnectError,
        match=r"failed: ip address mismatch: certificate is not valid for '127\.0\.0\.1'",
    ):
        await get(ctx, origin.url("127.0.0.1"))


async def test_verify_false_accepts_anything(
    tmp_path: Path, nursery: trio.Nursery, ca: trustme.CA
) -> None:
    origin = await start_origin(nursery, answer_ok, ssl_context=server_ctx(ca, "api.example.org"))
    tls = plan_tls(tmp_path, origin.url("localhost"), "    tls: {verify: false}")
    assert await get(build_ssl_context(tls.options()), origin.url("localhost")) == b"ok"


@pytest.fixture
def mtls_origin(ca: trustme.CA) -> Iterator[ThreadedTlsOrigin]:
    origin = ThreadedTlsOrigin(server_ctx(ca, client_ca=ca))
    yield origin
    origin.close()


async def test_client_certificate_required_by_the_server(
    tmp_path: Path, ca: trustme.CA, mtls_origin: ThreadedTlsOrigin
) -> None:
    origin = mtls_origin
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    # Without one: the server's alert comes after the handshake under TLS 1.3, still a
    # connect-class failure that says why.
    tls = plan_tls(tmp_path, origin.url("localhost"), "    tls: {ca_bundle: ca.pem}")
    with pytest.raises(httpx.ConnectError) as info:
        await get(build_ssl_context(tls.options()), origin.url("localhost"))
    assert str(info.value) == (
        f"TLS to localhost:{origin.port} failed: the server requires a client certificate "
        "(tls.client_cert)"
    )
    # With one in a file of its own and its key in another.
    client = ca.issue_cert("lens-client@example.org")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "me.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "me.key"))
    extra = "    tls: {ca_bundle: ca.pem, client_cert: me.pem, client_key: me.key}"
    tls = plan_tls(tmp_path, origin.url("localhost"), extra)
    assert await get(build_ssl_context(tls.options()), origin.url("localhost")) == b"ok"
    # Certificate and key in one file.
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    extra = "    tls: {ca_bundle: ca.pem, client_cert: both.pem}"
    tls = plan_tls(tmp_path, origin.url("localhost"), extra)
    assert await get(build_ssl_context(tls.options()), origin.url("localhost")) == b"ok"


async def test_client_certificate_from_an_unknown_ca_is_rejected(
    tmp_path: Path, ca: trustme.CA, mtls_origin: ThreadedTlsOrigin
) -> None:
    origin = mtls_origin
    stranger = trustme.CA().issue_cert("lens-client@example.org")
    stranger.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "me.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ctx = build_ssl_context(
        TlsOptions(ca_file=str(tmp_path / "ca.pem"), client_cert=str(tmp_path / "me.pem"))
    )
    with pytest.raises(httpx.ConnectError, match="the server rejected the client certificate"):
        await get(ctx, origin.url("localhost"))


async def test_plain_http_server_on_an_https_url(nursery: trio.Nursery) -> None:
    async def bad_request(conn: Conn) -> None:
        await conn.stream.receive_some(65536)  # a ClientHello: not HTTP
        await conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    origin = await start_origin(nursery, bad_request)
    with pytest.raises(httpx.ConnectError, match=r"did not answer in TLS \(is it plain http"):
        await get(build_ssl_context(TlsOptions()), f"https://127.0.0.1:{origin.port}/")


def test_unloadable_files_say_which(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(
        TlsSetupError, match=f"cannot load CA certificates from {tmp_path}/junk.pem"
    ):
        build_ssl_context(TlsOptions(ca_file=str(tmp_path / "junk.pem")))
    with pytest.raises(TlsSetupError, match=r"cannot load client certificate .*junk\.pem"):
        build_ssl_context(TlsOptions(client_cert=str(tmp_path / "junk.pem")))


def test_one_context_per_distinct_setting_and_bad_files_stop_the_run_up_front(
    tmp_path: Path, ca: trustme.CA
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    text = SCENARIO.format(url="https://a.example/v1", extra="    tls: {ca_bundle: ca.pem}")
    text = text.replace(
        "prompts:",
        "  p2:\n    type: openai-compatible\n    base_url: "
        "https://b.example/v1\n    model: m\n    tls: {ca_bundle: ca.pem}\nprompts:",
    )
    text = text.replace("requests: 1", "requests: 1\n    providers: [p, p2]")
    scenario = parse_scenario(text, file=str(tmp_path / "s.yaml"), env={}, base_dir=tmp_path)
    plan = compile_plan(scenario, env={})
    runner = StageRunner(plan, plan.providers, lambda rec: None)
    one = runner._ssl_context(plan.providers["p"])
    assert runner._ssl_context(plan.providers["p2"]) is one
    assert len(runner._ssl) == 1
    (tmp_path / "ca.pem").write_text("garbage")
    with pytest.raises(ProviderError, match="provider p: tls: cannot load CA certificates"):
        StageRunner(plan, plan.providers, lambda rec: None)
