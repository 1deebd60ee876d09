"""One rule for hiding the credentials a URL may carry: user-info and secret query values.

A leaf of the leaves: export destinations (``lens.targets``), proxy URLs
(``lens.netconfig``) and the redactor that sweeps every printed text (``lens.redact``) all
mask URLs, and they must agree on what a secret is, or one of them leaks what another
hides.  ``http://u:pw@h/write?db=x&p=secret`` becomes ``http://***:***@h/write?db=x&p=***``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"

# Query parameters whose values are credentials: these names exactly, or any name matching
# the pattern (X-Amz-Signature, client_secret, refresh_token, access_token, ...).  InfluxDB
# 1.x takes ``u=...&p=...``.
SECRET_QUERY_NAMES = frozenset(
    {"key", "api_key", "apikey", "sig", "signature", "code", "auth", "p", "pass", "pwd"}
)
_SECRET_QUERY_NAME = re.compile(
    r"token|secret|password|signature|credential|api[-_]?key", re.IGNORECASE
)


def is_secret_query_name(name: str) -> bool:
    """True when a query parameter called ``name`` (already unquoted) holds a credential."""
    lower = name.lower()
    return lower in SECRET_QUERY_NAMES or bool(_SECRET_QUERY_NAME.search(lower))


def mask_url(url: str, *, keep_user: bool = False) -> str:
    """``url`` without its password, its user name (unless ``keep_user``: a proxy's user
    name helps to tell proxies apart and is no secret) or the values of secret-looking
    query parameters.  Text that is not a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        shown_user = user if keep_user else MASK
        netloc = f"{shown_user}:{MASK}@{host}" if colon else f"{shown_user}@{host}"
    query = parts.query
    if query:
        query = "&".join(_mask_query_piece(piece) for piece in query.split("&"))
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to hide: the text exactly as given
    return parts._replace(netloc=netloc, query=query).geturl()


def _mask_query_piece(piece: str) -> str:
    name, sep, value = piece.partition("=")
    if sep and value and is_secret_query_name(unquote(name)):
        return f"{name}={MASK}"
    return piece
