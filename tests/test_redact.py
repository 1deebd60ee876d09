"""lens.redact: every secret lens holds, in every form a server may echo it, becomes ***."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from lens.netconfig import mask_proxy_url
from lens.plan.model import ProviderSpec, Secret
from lens.records import ErrorClass, RequestRecord
from lens.redact import Redactor, redact_record
from lens.targets import mask_dest
from lens.urlmask import mask_url

KEY = "sk-live-0123456789abcdef"


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "p",
        "type": "openai-compatible",
        "model": "m",
        "base_url": "http://127.0.0.1:1/v1",
    }
    return ProviderSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_an_api_key_and_its_bearer_form_are_redacted() -> None:
    r = Redactor.for_providers([spec(api_key=Secret(KEY))])
    assert r(f"invalid key {KEY}") == "invalid key ***"
    assert r(f"Authorization: Bearer {KEY}") == "Authorization: ***"
    assert r(f'{{"auth": "Bearer {KEY}"}}') == '{"auth": "Bearer ***"}'


@pytest.mark.parametrize(
    "name", ["x-api-key", "X-Goog-Api-Key", "api-key", "x-my-token", "Cookie", "x-secret-id"]
)
def test_headers_named_like_credentials_are_secret(name: str) -> None:
    r = Redactor.for_providers([spec(headers=((name, "value-of-the-header"),))])
    assert r("echo: value-of-the-header!") == "echo: ***!"


def test_a_header_marked_secret_by_the_scenario_is_secret() -> None:
    plain = spec(headers=(("x-tenant", "tenant-4711-private"),))
    assert Redactor.for_providers([plain])("tenant-4711-private") == "tenant-4711-private"
    marked = spec(
        headers=(("X-Tenant", "tenant-4711-private"),), secret_headers=frozenset({"x-tenant"})
    )
    assert Redactor.for_providers([marked])("tenant-4711-private") == "***"


def test_base_url_user_info_password_and_secret_query_are_masked() -> None:
    url = "http://user:PW-0123@host:8080/v1?token=Q-9876&model=m"
    r = Redactor.for_providers([spec(base_url=url)])
    assert r(url) == "http://***:***@host:8080/v1?token=***&model=m"
    # the password and the token alone, and the Basic form of user:pass
    assert r("got PW-0123 and Q-9876") == "got *** and ***"
    basic = base64.b64encode(b"user:PW-0123").decode()
    assert r(f"header was Basic {basic}") == "header was Basic ***"
    assert basic not in r(f"echo {basic}")


def test_mask_url_masks_secret_looking_query_names_whatever_the_value() -> None:
    assert mask_url("https://h/p?key=a&sig=b&X-Amz-Signature=c&client_secret=d&n=1") == (
        "https://h/p?key=***&sig=***&X-Amz-Signature=***&client_secret=***&n=1"
    )
    assert mask_url("https://u@h/p") == "https://***@h/p"
    assert mask_url("https://h/p") == "https://h/p"


def test_urls_in_free_text_are_masked_and_punctuation_kept() -> None:
    r = Redactor()
    assert r("export to http://h:1/w?db=x&token=abc: refused.") == (
        "export to http://h:1/w?db=x&token=***: refused."
    )


def test_percent_and_json_escaped_forms() -> None:
    secret = "abc/def+ghi=="
    r = Redactor.of([(secret, "key")])
    assert r("abc%2Fdef%2Bghi%3D%3D") == "***"
    assert r('"abc\\/def+ghi=="') == '"***"'


def test_echoed_credential_headers_are_masked_even_when_unknown() -> None:
    r = Redactor()
    text = (
        'headers: {"x-api-key": "unknown-key-1", '
        '"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/x"}'
    )
    out = r(text)
    assert "unknown-key-1" not in out
    assert "AKIA" not in out
    assert r("Bearer authentication required") == "Bearer authentication required"
    assert r("use Bearer abc.def-123456") == "use Bearer ***"


def test_short_secrets_are_skipped_and_said() -> None:
    r = Redactor.for_providers([spec(api_key=Secret("abc"))])
    assert r("abc") == "abc"  # would shred every word containing it
    assert r.skipped == ("api_key of provider p (3 characters)",)


def test_longest_secret_wins() -> None:
    r = Redactor.of([("secret", "a"), ("secret-and-more", "b")])
    assert r("x secret-and-more y") == "x *** y"


def test_proxy_passwords_from_the_environment() -> None:
    r = Redactor.for_providers([], environ={"HTTPS_PROXY": "http://me:proxy-pw-1@proxy:3128"})
    assert r("407 for proxy-pw-1") == "407 for ***"


def test_tree_redacts_every_string() -> None:
    r = Redactor.of([(KEY, "key")])
    doc = {"a": [KEY, {"b": f"x{KEY}"}], "n": 1, "url": "http://u:p@h/"}
    assert r.tree(doc) == {"a": ["***", {"b": "x***"}], "n": 1, "url": "http://***:***@h/"}


def test_redact_record_touches_only_server_controlled_text() -> None:
    rec = RequestRecord(
        provider="p",
        stage="s",
        prompt="q",
        index=0,
        ok=False,
        error_class=ErrorClass.HTTP_4XX,
        error_message=f"HTTP 401: bad key {KEY}",
        http_status=401,
        t_intended=None,
        t_dispatch=0,
        t_headers=1,
        t_first_chunk=None,
        t_first_token=None,
        t_first_visible=None,
        t_last_token=None,
        t_end=2,
        request_id=f"id-{KEY}",
        extra={"x-echo": KEY},
    )
    out = redact_record(rec, Redactor.of([(KEY, "key")]))
    assert out.error_message == "HTTP 401: bad key ***"
    assert out.request_id == "id-***"
    assert out.extra == {"x-echo": "***"}
    clean = dataclasses.replace(rec, error_message=None, request_id=None, extra={})
    assert redact_record(clean, Redactor.of([(KEY, "key")])) is clean


def test_one_url_rule_for_export_targets_proxies_and_the_redactor() -> None:
    """The three places that print URLs agree on what is secret (one masker, lens.urlmask)."""
    url = "http://bob:pw@h:8086/write?db=x&u=bob&p=pw&refresh_token=r"
    assert (
        mask_dest(url)
        == Redactor()(url)
        == "http://***:***@h:8086/write?db=x&u=bob&p=***&refresh_token=***"
    )
    assert mask_proxy_url(url) == "http://bob:***@h:8086/write?db=x&u=bob&p=***&refresh_token=***"
