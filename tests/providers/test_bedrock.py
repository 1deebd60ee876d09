from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.auth
import httpx
import pytest
import trio
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lens.errors import ProviderError
from lens.plan.model import BedrockSettings, Message, PromptSpec, ProviderSpec, Secret
from lens.providers.bedrock import (
    DEFAULT_INVOKE_MAX_TOKENS,
    BedrockAdapter,
    is_anthropic_model,
    partition_dns_suffix,
)
from lens.providers.bedrock_stream import ConverseStreamDecoder, InvokeStreamDecoder
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, RequestRecord, TokenSource
from lens.run.clock import RunClock
from lens.run.request import execute_request
from tests.providers.test_bedrock_eventstream import (
    message_start,
    message_stop,
    metadata,
    text,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN"
NOVA = "us.amazon.nova-micro-v1:0"
CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
FROZEN = datetime.datetime(2026, 11, 27, 12, 30, 45)
PROMPT = PromptSpec(id="q", messages=(Message("user", "What is the capital of France?"),))

_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_BEARER_TOKEN_BEDROCK",
)


@pytest.fixture(autouse=True)
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS credential chain that finds nothing and never touches the network."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("BOTO_CONFIG", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)


BEDROCK_FIELDS = {f.name for f in dataclasses.fields(BedrockSettings)}


def spec(**kw: Any) -> ProviderSpec:
    base: dict[str, Any] = {
        "id": "br",
        "type": "bedrock",
        "model": NOVA,
        "base_url": None,
    }
    # The Bedrock fields (region, aws_profile, api) go to its settings.
    own = {"region": "us-east-1"} | {k: kw.pop(k) for k in list(kw) if k in BEDROCK_FIELDS}
    base.update(kw, settings=BedrockSettings(**own))
    return ProviderSpec(**base)


def body_of(request: httpx.Request) -> dict[str, Any]:
    doc = json.loads(request.content)
    assert isinstance(doc, dict)
    return doc


def provider_error(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> str:
    with pytest.raises(ProviderError) as info:
        BedrockAdapter(spec(**kw))
    message = str(info.value)
    for secret in (SECRET, TOKEN, "sk-bedrock-secret"):
        assert secret not in message
    return message


# --- requests --------------------------------------------------------------------------------


@pytest.mark.usefixtures("creds")
def test_converse_request_url_headers_and_body() -> None:
    adapter = BedrockAdapter(spec(headers=(("X-Amzn-Bedrock-Trace", "ENABLED"),)))
    prompt = PromptSpec(
        id="q",
        messages=(
            Message("system", "Be brief."),
            Message("developer", "Answer in English."),
            Message("user", "Hello"),
            Message("user", "What is the capital of France?"),
            Message("assistant", "Paris."),
            Message("user", "And of Italy?"),
        ),
    )
    request = adapter.build_request(prompt, 64)
    assert request.method == "POST"
    assert str(request.url) == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-micro-v1%3A0"
        "/converse-stream"
    )
    assert request.url.raw_path == b"/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    assert adapter.url == str(request.url)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/vnd.amazon.eventstream"
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["x-amzn-bedrock-trace"] == "ENABLED"
    assert body_of(request) == {
        "messages": [
            {
                "role": "user",
                "content": [{"text": "Hello"}, {"text": "What is the capital of France?"}],
            },
            {"role": "assistant", "content": [{"text": "Paris."}]},
            {"role": "user", "content": [{"text": "And of Italy?"}]},
        ],
        "system": [{"text": "Be brief."}, {"text": "Answer in English."}],
        "inferenceConfig": {"maxTokens": 64},
    }
    assert isinstance(adapter.new_decoder(prompt), ConverseStreamDecoder)


@pytest.mark.usefixtures("creds")
def test_converse_max_tokens_prompt_wins_and_none_is_omitted() -> None:
    adapter = BedrockAdapter(spec())
    assert "inferenceConfig" not in body_of(adapter.build_request(PROMPT, None))
    assert "system" not in body_of(adapter.build_request(PROMPT, None))
    own = PromptSpec(id="q", messages=PROMPT.messages, max_tokens=7)
    assert body_of(adapter.build_request(own, 500))["inferenceConfig"] == {"maxTokens": 7}


@pytest.mark.usefixtures("creds")
def test_invoke_request_is_anthropic_native() -> None:
    adapter = BedrockAdapter(spec(model=CLAUDE, api="invoke"))
    prompt = PromptSpec(
        id="q",
        messages=(Message("system", "Be brief."), Message("user", "Hi"), Message("tool", "42")),
    )
    request = adapter.build_request(prompt, 128)
    assert str(request.url).endswith(
        "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke-with-response-stream"
    )
    body = body_of(request)
    assert body == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 128,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "42"}],
            }
        ],
        "system": [{"type": "text", "text": "Be brief."}],
    }
    assert "model" not in body
    assert "stream" not in body
    default = body_of(adapter.build_request(PROMPT, None))
    assert default["max_tokens"] == DEFAULT_INVOKE_MAX_TOKENS
    assert "system" not in default
    assert isinstance(adapter.new_decoder(PROMPT), InvokeStreamDecoder)


@pytest.mark.usefixtures("creds")
def test_invoke_refuses_other_model_families(monkeypatch: pytest.MonkeyPatch) -> None:
    message = provider_error(monkeypatch, model=NOVA, api="invoke")
    assert "Anthropic" in message
    assert "converse" in message
    assert NOVA in message


@pytest.mark.parametrize(
    ("model", "anthropic"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", True),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", True),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            True,
        ),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2", True),
        ("us.amazon.nova-micro-v1:0", False),
        ("meta.llama3-70b-instruct-v1:0", False),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", False),
    ],
)
def test_is_anthropic_model(model: str, anthropic: bool) -> None:
    assert is_anthropic_model(model) is anthropic


# --- SigV4 -------------------------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def independent_signature(
    request: httpx.Request, *, secret: str, region: str, signed: list[str]
) -> str:
    """SigV4 written out from the AWS spec, not botocore: checks the double encoding."""
    amz_date = request.headers["x-amz-date"]
    canonical_uri = quote(request.url.raw_path.decode(), safe="/~")  # encode the path again
    canonical_headers = "".join(f"{h}:{request.headers[h].strip()}\n" for h in signed)
    canonical = "\n".join(
        [
            "POST",
            canonical_uri,
            "",
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(request.content).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret}".encode(), amz_date[:8])
    for part in (region, "bedrock", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def auth_parts(request: httpx.Request) -> dict[str, str]:
    scheme, _, rest = request.headers["authorization"].partition(" ")
    assert scheme == "AWS4-HMAC-SHA256"
    return dict(part.strip().split("=", 1) for part in rest.split(","))


def botocore_authorization(request: httpx.Request, credentials: Credentials, region: str) -> str:
    """botocore's own signing of the request as sent (same headers, body and time)."""
    signed = auth_parts(request)["SignedHeaders"].split(";")
    headers = {h: request.headers[h] for h in signed if h not in ("x-amz-date",)}
    aws = AWSRequest(method="POST", url=str(request.url), data=request.content, headers=headers)
    SigV4Auth(credentials, "bedrock", region).add_auth(aws)
    assert aws.headers["X-Amz-Date"] == request.headers["x-amz-date"]
    return str(aws.headers["Authorization"])


@pytest.mark.usefixtures("creds", "frozen_clock")
def test_sigv4_headers_with_session_credentials() -> None:
    request = BedrockAdapter(spec()).build_request(PROMPT, 32)
    assert request.headers["x-amz-date"] == "20261127T123045Z"
    assert request.headers["x-amz-security-token"] == TOKEN
    parts = auth_parts(request)
    assert parts["Credential"] == f"{AKID}/20261127/us-east-1/bedrock/aws4_request"
    assert parts["SignedHeaders"] == "content-type;host;x-amz-date;x-amz-security-token"
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AKID}/20261127/us-east-1/bedrock/aws4_request, "
    )
    # botocore, signing the same request itself, gets the same signature ...
    assert request.headers["authorization"] == botocore_authorization(
        request, Credentials(AKID, SECRET, TOKEN), "us-east-1"
    )
    # ... and so does SigV4 written out by hand, whose canonical URI is double-encoded.
    assert parts["Signature"] == independent_signature(
        request,
        secret=SECRET,
        region="us-east-1",
        signed=["content-type", "host", "x-amz-date", "x-amz-security-token"],
    )


@pytest.mark.usefixtures("frozen_clock")
def test_sigv4_canonical_uri_double_encodes_the_model_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    arn = (
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
        "eu.anthropic.claude-3-5-haiku-20241022-v1:0"
    )
    adapter = BedrockAdapter(spec(model=arn, region="eu-west-1", api="invoke"))
    request = adapter.build_request(PROMPT, 32)
    assert request.url.raw_path == (
        b"/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2F"
        b"eu.anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream"
    )
    assert "x-amz-security-token" not in request.headers
    parts = auth_parts(request)
    assert parts["SignedHeaders"] == "content-type;host;x-amz-date"
    sig = SigV4Auth(Credentials(AKID, SECRET), "bedrock", "eu-west-1")
    aws = AWSRequest(method="POST", url=str(request.url), data=request.content)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    assert "/model/arn%253Aaws%253Abedrock%253A" in sig.canonical_request(aws)
    assert "inference-profile%252Feu.anthropic" in sig.canonical_request(aws)
    assert parts["Signature"] == independent_signature(
        request, secret=SECRET, region="eu-west-1", signed=["content-type", "host", "x-amz-date"]
    )


@pytest.mark.usefixtures("creds", "frozen_clock")
def test_custom_headers_are_signed_and_transport_headers_are_not() -> None:
    adapter = BedrockAdapter(
        spec(headers=(("X-Amzn-Bedrock-GuardrailIdentifier", "gr-1"), ("Authorization", "x")))
    )
    request = adapter.build_request(PROMPT, 32)
    signed = auth_parts(request)["SignedHeaders"].split(";")
    assert "x-amzn-bedrock-guardrailidentifier" in signed
    assert "accept" not in signed
    assert "accept-encoding" not in signed
    assert request.headers.get_list("authorization")[0].startswith("AWS4-HMAC-SHA256 ")
    assert len(request.headers.get_list("authorization")) == 1
    assert request.headers["authorization"] == botocore_authorization(
        request, Credentials(AKID, SECRET, TOKEN), "us-east-1"
    )


@pytest.mark.usefixtures("creds")
def test_every_request_is_signed_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = BedrockAdapter(spec())
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    first = adapter.build_request(PROMPT, 32)
    other_body = adapter.build_request(PROMPT, 33)
    later = FROZEN + datetime.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: later)
    second = adapter.build_request(PROMPT, 32)
    assert first.headers["authorization"] != other_body.headers["authorization"]
    assert second.headers["x-amz-date"] == "20261127T124045Z"
    assert first.headers["authorization"] != second.headers["authorization"]
    assert second.headers["authorization"] == botocore_authorization(
        second, Credentials(AKID, SECRET, TOKEN), "us-east-1"
    )


@pytest.mark.usefixtures("frozen_clock")
def test_credentials_from_a_named_profile(no_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = no_aws / "credentials"
    shared.write_text(
        "[bench]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profilesecret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    request = BedrockAdapter(spec(aws_profile="bench")).build_request(PROMPT, 8)
    parts = auth_parts(request)
    assert parts["Credential"] == "AKIDPROFILE/20261127/us-east-1/bedrock/aws4_request"
    assert parts["Signature"] == independent_signature(
        request,
        secret="profilesecret",
        region="us-east-1",
        signed=["content-type", "host", "x-amz-date"],
    )


@pytest.mark.usefixtures("creds")
def test_credentials_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = BedrockAdapter(spec())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLATER")
    request = adapter.build_request(PROMPT, 8)
    assert f"Credential={AKID}/" in request.headers["authorization"]


# --- Bedrock API keys ----------------------------------------------------------------------


def test_bearer_api_key_needs_no_aws_credentials() -> None:
    adapter = BedrockAdapter(spec(api_key=Secret("sk-bedrock-secret", source="${KEY}")))
    request = adapter.build_request(PROMPT, 8)
    assert request.headers["authorization"] == "Bearer sk-bedrock-secret"
    assert "x-amz-date" not in request.headers
    assert "x-amz-security-token" not in request.headers
    assert str(request.url).startswith("https://bedrock-runtime.us-east-1.amazonaws.com/model/")


def test_bearer_with_a_local_endpoint_needs_no_region() -> None:
    adapter = BedrockAdapter(
        spec(region=None, base_url="http://127.0.0.1:8123/", api_key=Secret("k"))
    )
    request = adapter.build_request(PROMPT, 8)
    assert (
        str(request.url)
        == "http://127.0.0.1:8123/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    )
    assert adapter.region is None


@pytest.mark.usefixtures("creds")
def test_empty_api_key_means_sigv4() -> None:
    request = BedrockAdapter(spec(api_key=Secret(""))).build_request(PROMPT, 8)
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


# --- construction errors -------------------------------------------------------------------


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    message = provider_error(monkeypatch)
    assert message == (
        "provider 'br' (bedrock): no AWS credentials: tried environment variables "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile 'default' in ~/.aws/credentials and "
        "~/.aws/config, and instance/container roles (or set api_key to a Bedrock API key)"
    )


def test_missing_credentials_names_the_profile(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = no_aws / "config"
    config.write_text("[profile bench]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    message = provider_error(monkeypatch, aws_profile="bench")
    assert "no AWS credentials" in message
    assert "profile 'bench'" in message


def test_partial_credentials_never_show_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    assert "no AWS credentials" in provider_error(monkeypatch)  # no key id: env not used
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    message = provider_error(monkeypatch)
    assert message.startswith(
        "provider 'br' (bedrock): could not resolve AWS credentials: PartialCredentialsError"
    )
    assert "AWS_SECRET_ACCESS_KEY" in message


def test_unknown_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    message = provider_error(monkeypatch, aws_profile="nope")
    assert message == (
        "provider 'br' (bedrock): AWS profile 'nope' not found in ~/.aws/config or "
        "~/.aws/credentials"
    )


@pytest.mark.usefixtures("creds")
def test_missing_region(monkeypatch: pytest.MonkeyPatch) -> None:
    message = provider_error(monkeypatch, region=None)
    assert "no region" in message
    assert "us-east-1" in message


@pytest.mark.usefixtures("creds")
@pytest.mark.parametrize("region", ["us-east1", "useast-1", "US-EAST-1", "mars-north-1", ""])
def test_unknown_region(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    message = provider_error(monkeypatch, region=region)
    assert f"unknown AWS region {region!r}" in message


@pytest.mark.usefixtures("creds")
def test_region_checks_and_partitions() -> None:
    assert partition_dns_suffix("us-east-1") == "amazonaws.com"
    assert partition_dns_suffix("cn-north-1") == "amazonaws.com.cn"
    assert partition_dns_suffix("us-gov-west-1") == "amazonaws.com"
    assert partition_dns_suffix("ap-southeast-9") == "amazonaws.com"  # newer than botocore
    assert partition_dns_suffix("aws-global") is None
    assert partition_dns_suffix("us-east1") is None
    china = BedrockAdapter(spec(region="cn-north-1"))
    assert china.url.startswith("https://bedrock-runtime.cn-north-1.amazonaws.com.cn/model/")
    newer = BedrockAdapter(spec(region="ap-southeast-9"))
    assert newer.url.startswith("https://bedrock-runtime.ap-southeast-9.amazonaws.com/")


@pytest.mark.usefixtures("creds", "frozen_clock")
def test_base_url_region_from_the_host_or_the_spec() -> None:
    vpce = "https://vpce-0abc-xyz.bedrock-runtime.eu-central-1.vpce.amazonaws.com"
    adapter = BedrockAdapter(spec(region=None, base_url=vpce))
    assert adapter.region == "eu-central-1"
    request = adapter.build_request(PROMPT, 8)
    assert str(request.url).startswith(vpce + "/model/")
    assert "/eu-central-1/bedrock/aws4_request" in request.headers["authorization"]

    local = BedrockAdapter(spec(region="us-west-2", base_url="http://127.0.0.1:9/"))
    request = local.build_request(PROMPT, 8)
    assert request.headers["host"] == "127.0.0.1:9"
    assert "/us-west-2/bedrock/aws4_request" in request.headers["authorization"]
    assert request.headers["authorization"] == botocore_authorization(
        request, Credentials(AKID, SECRET, TOKEN), "us-west-2"
    )


@pytest.mark.usefixtures("creds")
def test_base_url_without_a_region_cannot_be_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = provider_error(monkeypatch, region=None, base_url="http://127.0.0.1:9")
    assert "no region to sign requests for http://127.0.0.1:9: set region" in message
    message = provider_error(monkeypatch, region=None, base_url="https://u:pw@proxy.test/br")
    assert message.endswith("no region to sign requests for https://proxy.test: set region")


@pytest.mark.usefixtures("creds")
def test_empty_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "no model id" in provider_error(monkeypatch, model="")


# --- HTTP errors and facts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "error_class", "message"),
    [
        (
            429,
            {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"},
            b'{"message":"Too many requests, please wait before trying again."}',
            ErrorClass.HTTP_429,
            "HTTP 429 ThrottlingException: Too many requests, please wait before trying again.",
        ),
        (
            429,
            {"x-amzn-errortype": "ModelNotReadyException"},
            b'{"message":"Model is not ready"}',
            ErrorClass.HTTP_429,
            "HTTP 429 ModelNotReadyException: Model is not ready",
        ),
        (
            503,
            {"x-amzn-errortype": "ServiceUnavailableException"},
            b'{"message":"Service unavailable"}',
            ErrorClass.OVERLOADED,
            "HTTP 503 ServiceUnavailableException: Service unavailable",
        ),
        (
            408,
            {},
            b'{"message":"Model timed out"}',
            ErrorClass.HTTP_4XX,
            "HTTP 408 ModelTimeoutException: Model timed out",
        ),
        (
            400,
            {},
            b'{"__type":"com.amazon.coral.validate#ValidationException",'
            b'"message":"The provided model identifier is invalid."}',
            ErrorClass.HTTP_4XX,
            "HTTP 400 ValidationException: The provided model identifier is invalid.",
        ),
        (
            403,
            {"x-amzn-errortype": "AccessDeniedException"},
            b'{"Message":"User is not authorized to perform: bedrock:InvokeModel"}',
            ErrorClass.HTTP_4XX,
            "HTTP 403 AccessDeniedException: User is not authorized to perform: "
            "bedrock:InvokeModel",
        ),
        (
            424,
            {"x-amzn-errortype": "ModelErrorException"},
            b'{"message":"model failed"}',
            ErrorClass.HTTP_4XX,
            "HTTP 424 ModelErrorException: model failed",
        ),
        (500, {}, b"Internal Server Error", ErrorClass.HTTP_5XX, "HTTP 500: Internal Server Error"),
        (502, {}, b"", ErrorClass.HTTP_5XX, "HTTP 502: (empty body)"),
        (404, {}, b"[1]", ErrorClass.HTTP_4XX, "HTTP 404: [1]"),
    ],
)
def test_classify_http_error(
    status: int,
    headers: dict[str, str],
    body: bytes,
    error_class: ErrorClass,
    message: str,
) -> None:
    adapter = BedrockAdapter(spec(api_key=Secret("k")))
    assert adapter.classify_http_error(status, httpx.Headers(headers), body) == (
        error_class,
        message,
    )


def test_response_facts() -> None:
    adapter = BedrockAdapter(spec(api_key=Secret("k")))
    headers = httpx.Headers(
        {
            "x-amzn-RequestId": "4f8a-11",
            "x-amzn-ErrorType": "ThrottlingException",
            "content-type": "application/vnd.amazon.eventstream",
        }
    )
    assert adapter.response_facts(headers) == {
        "x-amzn-requestid": "4f8a-11",
        "x-amzn-errortype": "ThrottlingException",
    }


def test_registry_builds_bedrock_adapters() -> None:
    adapter = adapter_for(spec(api_key=Secret("k")))
    assert isinstance(adapter, BedrockAdapter)


# --- the whole request path, in process ----------------------------------------------------


class _Reads(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            await trio.sleep(0.001)
            yield part


def _verify(request: httpx.Request) -> None:
    """What a SigV4-checking server does: re-sign the received request and compare."""
    assert request.headers["authorization"] == botocore_authorization(
        request, Credentials(AKID, SECRET, TOKEN), "us-east-1"
    )


@pytest.mark.usefixtures("creds")
async def test_execute_request_end_to_end() -> None:
    body = b"".join(
        [message_start(), text("Paris"), text(" is the capital."), message_stop(), metadata(9, 5)]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        _verify(request)
        parts = [body[i : i + 50] for i in range(0, len(body), 50)]
        return httpx.Response(
            200,
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": "req-123",
            },
            stream=_Reads(parts),
        )

    records: list[RequestRecord] = []
    adapter = BedrockAdapter(spec())
    async with httpx.MockTransport(handler) as transport:
        await execute_request(
            transport,
            adapter,
            PROMPT,
            clock=RunClock(),
            stage="s",
            index=0,
            t_intended=None,
            timeout_s=5.0,
            max_tokens=16,
            emit=records.append,
        )
    (rec,) = records
    assert rec.ok, rec.error_message
    assert len(seen) == 1
    assert rec.request_id == "req-123"
    assert rec.input_tokens == 9
    assert rec.output_tokens == 5
    assert rec.token_source is TokenSource.USAGE
    assert len(rec.chunk_times) == 2
    assert rec.extra["stop_reason"] == "end_turn"
    assert rec.extra["bedrock_latency_ms"] == "522"
    assert rec.reads > 1


@pytest.mark.usefixtures("creds")
async def test_execute_request_http_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"x-amzn-errortype": "ThrottlingException:http://x/", "x-amzn-requestid": "r9"},
            stream=_Reads([b'{"message":"Too many', b' requests"}']),
        )

    records: list[RequestRecord] = []
    async with httpx.MockTransport(handler) as transport:
        await execute_request(
            transport,
            BedrockAdapter(spec()),
            PROMPT,
            clock=RunClock(),
            stage="s",
            index=0,
            t_intended=None,
            timeout_s=5.0,
            max_tokens=16,
            emit=records.append,
        )
    (rec,) = records
    assert rec.error_class is ErrorClass.HTTP_429
    assert rec.error_message == "HTTP 429 ThrottlingException: Too many requests"
    assert rec.request_id == "r9"
