"""Redaction: the secrets lens holds never leave the process in what it records or prints.

A ``Redactor`` is built once from the plan (API keys and tokens, values of secret headers,
URL user-info and passwords, secret-looking query parameters, export destinations' tokens,
proxy passwords from the environment).  It replaces each of them, and the forms a server
may echo them in (``Bearer <key>``, the base64 ``user:pass`` of Basic auth, percent- or
JSON-escaped), by ``***``; URLs additionally lose their user-info and the values of
secret-looking query parameters whatever they are (``http://***:***@host/v1?token=***``).

Secrets shorter than ``MIN_SECRET_CHARS`` are not replaced in free text (a 3-character
"key" would shred every word containing it); ``skipped`` says which, so the CLI can warn.

The work is one compiled regex per string, done where a record is created (its error
message, request id and provider facts) and where text leaves the process (results, plan
output, warnings, exception texts): never per network read.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from lens.plan.model import Plan, ProviderSpec, header_is_secret
from lens.records import RequestRecord
from lens.targets import secrets_of
from lens.urlmask import MASK, is_secret_query_name, mask_url

MIN_SECRET_CHARS = 4

# A URL in free text; punctuation ending a sentence (or a "url: message") is not part of it.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]*[^\s\"'<>.,:;!?)\]}]")
# A credential header echoed in free text (a server's error body, an exception) whatever
# its value: ``Authorization: Bearer x``, ``"x-api-key":"x"``, ``X-Amz-Security-Token=x``.
# This also covers credentials lens did not know in advance (a SigV4 signature).
_ECHOED_HEADER = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization|\bx-api-key|\bapi-key|\bx-goog-api-key"""
    r"""|\bx-amz-security-token|\bcookie|\bset-cookie)(?P<sep>["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>[^"'\r\n,}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+([A-Za-z0-9._~+/=-]{8,})")


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces known secrets (and secret-shaped URL parts and echoed credential headers)
    in text by ``***``.  ``Redactor()`` knows no secret but still masks URLs and headers."""

    secrets: tuple[str, ...] = ()  # every form replaced, longest first
    skipped: tuple[str, ...] = ()  # what was too short to redact, described (never the value)
    _found: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, found: Iterable[tuple[str, str]]) -> Redactor:
        """From ``(value, description)`` pairs: every form of each value worth replacing."""
        found = tuple(found)
        forms: set[str] = set()
        skipped: list[str] = []
        for value, what in found:
            if not value:
                continue
            if len(value) < MIN_SECRET_CHARS:
                skipped.append(f"{what} ({len(value)} characters)")
                continue
            forms.update(_forms(value))
        ordered = tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len)[::-1])
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        return cls(ordered, tuple(dict.fromkeys(skipped)), found, pattern)

    @classmethod
    def for_providers(
        cls,
        providers: Iterable[ProviderSpec],
        *,
        extra: Iterable[tuple[str, str]] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Redactor:
        found: list[tuple[str, str]] = []
        for spec in providers:
            found += provider_secrets(spec)
        found += extra
        if environ is not None:
            found += environment_secrets(environ)
        return cls.of(found)

    @classmethod
    def for_plan(cls, plan: Plan, environ: Mapping[str, str] | None = None) -> Redactor:
        exports = [
            (secret, f"export destination {e.kind}")
            for e in plan.exports
            for secret in secrets_of(e.dest.reveal())
        ]
        return cls.for_providers(plan.providers.values(), extra=exports, environ=environ)

    def with_secrets(self, found: Iterable[tuple[str, str]]) -> Redactor:
        """This redactor plus more secrets (say, ``--export`` flags' tokens)."""
        return Redactor.of((*self._found, *found))

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced; URLs and echoed credential headers masked."""
        if "://" in text:  # URLs first: their user-info keeps its user:password shape
            text = _URL.sub(lambda m: mask_url(m.group(0)), text)
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        if ":" in text or "=" in text:  # an echoed header needs one: skip the regex scan
            text = _ECHOED_HEADER.sub(_mask_echoed, text)
        return _BEARER.sub(_mask_bearer, text) if "Bear" in text or "Basic" in text else text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self(text)

    def facts(self, facts: Mapping[str, str]) -> dict[str, str]:
        return {name: self(value) for name, value in facts.items()}

    def tree(self, obj: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every string redacted."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {k: self.tree(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.tree(v) for v in obj]
        return obj


def _mask_echoed(m: re.Match[str]) -> str:
    value = m.group("value")
    if value.strip() in ("", MASK):
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{MASK}"


def _mask_bearer(m: re.Match[str]) -> str:
    # A credential, unless it is a plain word ("Bearer authentication required").
    return m.group(0) if m.group(2).isalpha() else f"{m.group(1)} {MASK}"


def _forms(value: str) -> set[str]:
    """``value`` as a server or a library may echo it."""
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1], value.replace("/", "\\/")}
    scheme, sep, credential = value.partition(" ")
    if sep and scheme.lower() in ("bearer", "basic", "token", "key") and credential:
        forms.add(credential)  # the key without its scheme
        if scheme.lower() == "basic":
            forms.update(_basic_forms(credential))
    return forms


def _basic_forms(encoded: str) -> set[str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:
        return set()
    _, _, password = decoded.partition(":")
    return {decoded, password} if password else {decoded}


def _url_secrets(url: str, what: str) -> list[tuple[str, str]]:
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    found: list[tuple[str, str]] = []
    if password:
        found.append((unquote(password), f"password in {what}"))
        pair = f"{unquote(username or '')}:{unquote(password)}"
        found.append((pair, f"user-info in {what}"))
        found.append((base64.b64encode(pair.encode()).decode(), f"user-info in {what}"))
    for piece in parts.query.split("&"):
        name, sep, raw = piece.partition("=")
        if sep and raw and is_secret_query_name(unquote(name)):
            found.append((unquote(raw), f"query parameter {unquote(name)} in {what}"))
            found.append((raw, f"query parameter {unquote(name)} in {what}"))
    return found


def provider_secrets(spec: ProviderSpec) -> list[tuple[str, str]]:
    """Every credential ``spec`` holds, as ``(value, description)``."""
    where = f"provider {spec.id}"
    found: list[tuple[str, str]] = []
    if spec.api_key is not None:
        found.append((spec.api_key.reveal(), f"api_key of {where}"))
    for name, value in spec.headers:
        if header_is_secret(spec, name):
            found.append((value, f"header {name} of {where}"))
    if spec.base_url:
        found += _url_secrets(spec.base_url, f"base_url of {where}")
    if spec.proxy is not None:
        # The provider's proxy: (or the variable it reads); its password is sent to it.
        proxies = [spec.proxy.url] if spec.proxy.url is not None else []
        for secret in proxies + [url for _, url in spec.proxy.env]:
            url = secret.reveal()
            found += _url_secrets(url if "://" in url else f"http://{url}", f"proxy of {where}")
    return found


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def environment_secrets(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Proxy passwords from ``HTTP(S)_PROXY``/``ALL_PROXY`` (either case): lens may send
    them to a proxy, and a proxy's error page may echo them."""
    found: list[tuple[str, str]] = []
    for name, value in environ.items():
        if name.lower() in _PROXY_VARIABLES and value:
            found += _url_secrets(value, f"${name}")
    return found


def redact_record(rec: RequestRecord, redact: Redactor) -> RequestRecord:
    """``rec`` with its server-controlled text (error message, request id, provider facts)
    redacted; the very same record when there was nothing to redact (the common case, and
    a cheap one: rebuilding a record costs more than checking it)."""
    if rec.error_message is None and rec.request_id is None and not rec.extra:
        return rec
    message = redact.optional(rec.error_message)
    request_id = redact.optional(rec.request_id)
    extra = redact.facts(rec.extra)
    if message == rec.error_message and request_id == rec.request_id and extra == rec.extra:
        return rec
    return dataclasses.replace(rec, error_message=message, request_id=request_id, extra=extra)
