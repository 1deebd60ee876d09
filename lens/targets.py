"""Export targets ``KIND=DEST``: parsed, checked and masked.

A leaf module like ``lens.metric_catalog``: the scenario loader validates ``export:`` entries with
it, the plan carries them, and the exporters (``lens.export.registry.EXPORTERS``, which
must list exactly ``EXPORT_KINDS``) write to them.  A destination may hold credentials (a
``token`` query option, an InfluxDB ``p`` password, ``user:password@`` userinfo): ``masked``
is the only form that is ever printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from lens.entry_points import exporter_kinds
from lens.suggest import did_you_mean
from lens.urlmask import MASK, is_secret_query_name, mask_url

EXPORT_KINDS: tuple[str, ...] = ("csv", "prometheus", "influx", "junit", "markdown", "html")
_HTTP = re.compile(r"^https?://", re.IGNORECASE)


class TargetError(ValueError):
    """A target spec that cannot be used; the message says what was expected."""


def is_url(dest: str) -> bool:
    return bool(_HTTP.match(dest))


@dataclass(frozen=True, slots=True)
class ExportTarget:
    kind: str
    dest: str = field(repr=False)  # may hold a credential: print ``masked``

    @property
    def masked(self) -> str:
        return mask_dest(self.dest)

    def __repr__(self) -> str:
        return f"ExportTarget({self.kind}={self.masked})"

    def __str__(self) -> str:
        return f"{self.kind}={self.masked}"

    def scrub(self, text: str) -> str:
        """``text`` (say, a server's or a library's message) with this target's secrets
        replaced by ``***``."""
        for secret in sorted(secrets_of(self.dest), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def secrets_of(dest: str) -> list[str]:
    if not is_url(dest):
        return []
    parts = urlsplit(dest)
    found = [parts.password] if parts.password else []
    for piece in parts.query.split("&"):
        key, _, raw = piece.partition("=")
        if raw and is_secret_query_name(unquote(key)):
            found += [raw, *(v for k, v in parse_qsl(piece) if v != raw)]
    return found


def mask_dest(dest: str) -> str:
    """``dest`` with userinfo and credential options replaced by ``***``."""
    return mask_url(dest) if is_url(dest) else dest


def known_kinds() -> tuple[str, ...]:
    """``EXPORT_KINDS``, then the kinds installed exporter plugins add."""
    return (*EXPORT_KINDS, *(k for k in exporter_kinds() if k not in EXPORT_KINDS))


def parse_target(spec: str) -> ExportTarget:
    """``KIND=DEST`` -> ``ExportTarget``; a ``TargetError`` names what was expected."""
    kind, sep, dest = spec.partition("=")
    kind = kind.strip()
    if not sep or not kind:
        raise TargetError(
            f"expected KIND=DEST such as csv=out/requests.csv, got {mask_dest(spec)!r} "
            f"(kinds: {', '.join(known_kinds())})"
        )
    kinds = known_kinds()
    if kind not in kinds:
        hint = did_you_mean(kind, kinds)
        raise TargetError(f"unknown export kind {kind!r}{hint}; known kinds: {', '.join(kinds)}")
    target = ExportTarget(kind, dest.strip())
    _check_dest(target)
    return target


def _check_dest(target: ExportTarget) -> None:
    kind, dest = target.kind, target.dest
    if not dest:
        raise TargetError(f"{kind}= needs a destination after '='")
    if kind == "prometheus" or kind not in EXPORT_KINDS:
        return  # a Pushgateway URL or a textfile-collector file; a plugin checks its own
    if kind != "influx":
        if is_url(dest):
            raise TargetError(f"{kind} writes a file; expected a path, got the URL {target.masked}")
        return
    if not is_url(dest):
        raise TargetError(
            "influx needs an http(s) URL such as http://127.0.0.1:8086/write?db=lens (1.x) "
            f"or http://host:8086/api/v2/write?org=o&bucket=b, got {target.masked!r}"
        )
    parts = urlsplit(dest)
    options = dict(parse_qsl(parts.query))
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2/write"):
        if not options.get("bucket"):
            raise TargetError(f"influx 2.x URL {target.masked} needs ?bucket=... (and org=...)")
    elif path.endswith("/write"):
        if not options.get("db"):
            raise TargetError(f"influx 1.x URL {target.masked} needs ?db=...")
    else:
        raise TargetError(
            f"influx URL {target.masked} should end in /write?db=... (1.x) or "
            "/api/v2/write?org=...&bucket=... (2.x, 3.x)"
        )
