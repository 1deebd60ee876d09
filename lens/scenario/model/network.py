"""Network settings of providers: TLS, proxy and keep-alive."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, WithJsonSchema, model_validator

from lens.netconfig import ProxyURLError, parse_proxy_url
from lens.scenario.env_scope import FROM_ENV
from lens.scenario.model.base import FieldError, FrozenModel, NonEmptyStr


class TlsSettings(FrozenModel):
    """How a provider's https connections are verified, and the client certificate."""

    ca_bundle: NonEmptyStr | None = Field(
        None,
        description="PEM file of the CA certificates to trust, instead of the default "
        "(certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set); relative to the "
        "scenario's folder.",
    )
    client_cert: NonEmptyStr | None = Field(
        None,
        description="PEM file of the client certificate to present (with its key, unless "
        "client_key is given); relative to the scenario's folder.",
    )
    client_key: NonEmptyStr | None = Field(
        None, description="PEM file of client_cert's private key, when it is a file of its own."
    )
    verify: bool = Field(
        True,
        strict=True,
        description="false: accept any certificate and host name (a warning on every run).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        if self.client_key is not None and self.client_cert is None:
            raise FieldError(
                "client_key needs client_cert: the certificate that key belongs to", "client_key"
            )
        if not self.verify and self.ca_bundle is not None:
            raise FieldError(
                "ca_bundle is never used with verify: false (nothing is verified): drop one",
                "verify",
            )
        return self


def _proxy_setting(value: object) -> object:
    """``proxy:``: an HTTP proxy URL, or ``none`` / false for a direct connection."""
    if value is False:
        return "none"
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return "none"
        try:
            parse_proxy_url(value)
        except ProxyURLError as exc:
            raise ValueError(str(exc)) from None
        return value
    raise ValueError(
        "expected an HTTP proxy URL such as http://proxy.example:3128, or none for a direct "
        "connection"
    )


# Stored as a secret: the URL's user-info may hold the proxy's password.
ProxySetting = Annotated[
    SecretStr,
    BeforeValidator(_proxy_setting),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"const": False}],
            "description": "HTTP proxy URL (http://[user:password@]host:port), or none / "
            "false to connect directly (default: HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / "
            "NO_PROXY). SOCKS is not supported.",
        }
    ),
]


class KeepAlive(FrozenModel):
    keep_alive: bool = Field(
        True,
        strict=True,
        description="false: a fresh connection for every request, sent with Connection: "
        "close (connect time stays out of TTFT).",
    )


class Network(KeepAlive):
    """Connection settings of every provider that reaches a server over the network."""

    proxy: Annotated[ProxySetting | None, FROM_ENV] = Field(
        None,
        description="HTTP proxy URL for this provider, or none to connect directly; when "
        "omitted, the HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY variables.",
    )
    tls: Annotated[TlsSettings | None, FROM_ENV] = Field(
        None,
        description="TLS verification and client certificate (default: verify against "
        "certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set).",
    )
