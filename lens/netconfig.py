"""Network settings: which proxy an origin goes through, and how TLS is verified.

Shared by ``lens.plan`` (validation, what a plan shows) and ``lens.run`` (the transport),
so it imports nothing from either.

Proxies
    ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` and their lower-case
    forms, read the way curl and Python's urllib read them: the lower-case variable wins
    when both are set, an empty value is unset; an ``http://`` origin uses ``HTTP_PROXY``,
    an ``https://`` one ``HTTPS_PROXY``, either falls back to ``ALL_PROXY``.  ``NO_PROXY``
    is a comma (or space) separated list: ``*`` (everything), a host name that also
    matches its sub-domains (``example.com`` and ``.example.com`` both cover
    ``api.example.com`` and ``example.com``, never ``notexample.com``), an IP address, a
    CIDR range (``10.0.0.0/8``, ``fd00::/8``); any entry may end in ``:port`` to match
    that port only.  A provider's own ``proxy:`` URL replaces the environment for it
    (NO_PROXY does not apply), and ``proxy: none`` connects directly.

    Only HTTP proxies are supported (``http://[user:password@]host[:port]``; a URL with no
    scheme is taken as ``http://``): plain-http origins are sent to the proxy in absolute
    form, https origins go through a ``CONNECT`` tunnel with TLS to the origin inside it.
    SOCKS (``socks5://`` ...) and TLS to the proxy itself (``https://`` proxy URLs) are
    not supported, and are reported as such.  A password in the proxy URL is sent as
    ``Proxy-Authorization: Basic`` and never shown: every printed form is masked.

TLS
    The CAs trusted are, in order: a provider's ``tls.ca_bundle``; else ``SSL_CERT_FILE``
    and/or ``SSL_CERT_DIR`` when set; else certifi's bundle.  ``tls.client_cert`` (and
    ``tls.client_key`` when the key is in its own file) is presented when the server asks.
    ``tls.verify: false`` accepts any certificate and any host name.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

import certifi

from lens.urlmask import mask_url

__all__ = [
    "PROXY_VARIABLES",
    "NoProxy",
    "ProxyRules",
    "ProxyURL",
    "ProxyURLError",
    "TlsOptions",
    "TlsSetupError",
    "build_ssl_context",
    "env_proxies",
    "explain_tls_error",
    "mask_proxy_url",
    "parse_proxy_url",
]

# The variables read, in the order a plan lists them (upper-case names; lower-case wins).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ProxyURLError(ValueError):
    """A proxy URL lens cannot use; the message says why (and never holds the password)."""


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """An HTTP proxy.  ``repr``/``str`` are masked: the password is a credential."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` as in messages (IPv6 in brackets)."""
        return f"{_bracket(self.host)}:{self.port}"

    @property
    def masked(self) -> str:
        """The URL as it may be printed: the user name kept, the password ``***``."""
        if self.username is None:
            return f"http://{self.address}"
        secret = ":***" if self.password is not None else ""
        return f"http://{self.username}{secret}@{self.address}"

    def authorization(self) -> bytes | None:
        """The ``Proxy-Authorization`` value for the URL's user-info, if it has one."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return b"Basic " + base64.b64encode(pair)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"ProxyURL({self.masked})"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_proxy_url(text: str) -> ProxyURL:
    """Parse ``http://[user[:password]@]host[:port]`` (default port 80; no scheme: http).

    Raises ``ProxyURLError`` with a message fit to print (masked) for what lens cannot use.
    """
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    shown = mask_proxy_url(raw)
    if scheme.startswith("socks"):
        raise ProxyURLError(
            f"{shown}: SOCKS proxies are not supported; lens speaks to HTTP proxies "
            "(http://host:port, CONNECT for https origins)"
        )
    if scheme == "https":
        raise ProxyURLError(
            f"{shown}: TLS to the proxy itself (an https:// proxy URL) is not supported; "
            "use the proxy's http:// address (https origins are still tunnelled with CONNECT "
            "and verified end to end)"
        )
    if scheme != "http":
        raise ProxyURLError(f"{shown}: unsupported proxy scheme {scheme!r}: expected http://")
    try:
        port = parts.port
    except ValueError:
        raise ProxyURLError(f"{shown}: the port is not a number from 0 to 65535") from None
    host = parts.hostname
    if not host:
        raise ProxyURLError(f"{shown}: no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyURLError(f"{shown}: a proxy URL is scheme, host and port only (no path)")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(host, port or 80, username, password)


def mask_proxy_url(url: str) -> str:
    """``url`` as a proxy URL is printed: the user name kept, its password masked."""
    return mask_url(url, keep_user=True)


# -- NO_PROXY --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NoProxyEntry:
    host: str | None = None  # a domain: itself and its sub-domains
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class NoProxy:
    """A parsed ``NO_PROXY`` list: ``matches(host, port)`` says "connect directly"."""

    everything: bool = False
    entries: tuple[_NoProxyEntry, ...] = ()

    @classmethod
    def parse(cls, value: str) -> NoProxy:
        entries: list[_NoProxyEntry] = []
        for item in value.replace(" ", ",").split(","):
            text = item.strip().lower()
            if not text:
                continue
            if text == "*":
                return cls(everything=True)
            host, port = _split_port(text)
            try:
                network = ipaddress.ip_network(host, strict=False)
            except ValueError:
                entries.append(_NoProxyEntry(host=host.lstrip(".").rstrip("."), port=port))
            else:
                entries.append(_NoProxyEntry(network=network, port=port))
        return cls(entries=tuple(entries))

    def matches(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        host = host.lower().strip("[]").rstrip(".")
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self.entries:
            if entry.port is not None and entry.port != port:
                continue
            if entry.network is not None:
                if address is not None and address in entry.network:
                    return True
            elif entry.host and (host == entry.host or host.endswith("." + entry.host)):
                return True
        return False


def _split_port(text: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``v6`` / ``cidr`` -> (host, port or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if port.isdigit():
            return host, int(port)
    return text, None


# -- which proxy for an origin ----------------------------------------------------------------


def env_proxies(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The proxy variables set in ``env``: upper-case name -> (variable read, value).

    The lower-case variable wins when both are set (curl, urllib); empty means unset.
    """
    found: dict[str, tuple[str, str]] = {}
    for name in PROXY_VARIABLES:
        for variable in (name.lower(), name):
            value = env.get(variable, "").strip()
            if value:
                found[name] = (variable, value)
                break
    return found


ProxyMode = Literal["env", "url", "none"]


@dataclass(frozen=True, slots=True)
class ProxyRules:
    """Which proxy each origin of one provider goes through (see the module docstring)."""

    mode: ProxyMode = "none"
    url: ProxyURL | None = None  # mode "url"
    http: ProxyURL | None = None  # mode "env": HTTP_PROXY, else ALL_PROXY
    https: ProxyURL | None = None  # mode "env": HTTPS_PROXY, else ALL_PROXY
    no_proxy: NoProxy = NoProxy()

    @classmethod
    def from_env(cls, variables: Mapping[str, str]) -> ProxyRules:
        """Rules from proxy variables (upper-case names, as ``env_proxies`` gives values).

        Raises ``ProxyURLError`` naming the variable when a value is unusable.
        """

        def parsed(name: str) -> ProxyURL | None:
            value = variables.get(name)
            if value is None:
                return None
            try:
                return parse_proxy_url(value)
            except ProxyURLError as exc:
                raise ProxyURLError(f"{name}={exc}") from None

        fallback = parsed("ALL_PROXY")
        http = parsed("HTTP_PROXY") or fallback
        https = parsed("HTTPS_PROXY") or fallback
        if http is None and https is None:
            return cls()
        return cls(
            mode="env",
            http=http,
            https=https,
            no_proxy=NoProxy.parse(variables.get("NO_PROXY", "")),
        )

    def for_origin(self, scheme: str, host: str, port: int) -> ProxyURL | None:
        """The proxy for ``scheme://host:port``, or None to connect directly."""
        if self.mode == "url":
            return self.url
        if self.mode == "none":
            return None
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.no_proxy.matches(host, port):
            return None
        return proxy


# -- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """What an SSL context is built from; equal options share one context in a run."""

    ca_file: str | None = None  # None (and no ca_dir): certifi's bundle
    ca_dir: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True


class TlsSetupError(ValueError):
    """A CA bundle or client certificate could not be loaded; the message names the file."""


def build_ssl_context(options: TlsOptions) -> ssl.SSLContext:
    """A client context for ``options``.  Loading a CA bundle costs tens of milliseconds:
    callers build one per distinct ``TlsOptions`` and share it."""
    try:
        if options.ca_file is None and options.ca_dir is None:
            ctx = ssl.create_default_context(cafile=certifi.where())
        else:
            ctx = ssl.create_default_context(cafile=options.ca_file, capath=options.ca_dir)
    except (OSError, ssl.SSLError) as exc:
        where = " and ".join(p for p in (options.ca_file, options.ca_dir) if p)
        raise TlsSetupError(f"cannot load CA certificates from {where}: {_why(exc)}") from exc
    if options.client_cert is not None:
        try:
            ctx.load_cert_chain(options.client_cert, options.client_key)
        except (OSError, ssl.SSLError) as exc:
            files = " with key ".join(p for p in (options.client_cert, options.client_key) if p)
            raise TlsSetupError(f"cannot load client certificate {files}: {_why(exc)}") from exc
    if not options.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def explain_tls_error(exc: BaseException) -> str | None:
    """Why a TLS handshake (or the first read after it) failed, in words; None when no
    ``ssl.SSLError`` is among ``exc`` and its causes.

    ``certificate verify failed: self-signed certificate``, ``hostname mismatch: ...``,
    ``the server requires a client certificate (tls.client_cert)`` ...
    """
    err = _ssl_cause(exc)
    if err is None:
        return None
    if isinstance(err, ssl.SSLCertVerificationError):
        detail = err.verify_message or err.reason or "unknown reason"
        if "mismatch" in detail.lower():
            # OpenSSL: "Hostname mismatch, certificate is not valid for 'x'."
            head, _, rest = detail.partition(",")
            return f"{head.strip().lower()}: {rest.strip().rstrip('.')}"
        return f"certificate verify failed: {detail}"
    reason = (err.reason or "").upper()
    if isinstance(err, ssl.SSLEOFError) or "EOF" in reason:
        return "the server closed the connection during the TLS handshake"
    if "CERTIFICATE_REQUIRED" in reason:
        return "the server requires a client certificate (tls.client_cert)"
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        return "the server rejected the client certificate (" + _words(reason) + ")"
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return "the server did not answer in TLS (is it plain http://?)"
    return _words(reason) if reason else str(err)


def _words(reason: str) -> str:
    return reason.lower().replace("_", " ")


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None
