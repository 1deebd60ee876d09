"""lens.netconfig: proxy variables, NO_PROXY matching, proxy URLs and their masked forms."""

from __future__ import annotations

import base64

import pytest

from lens.netconfig import (
    NoProxy,
    ProxyRules,
    ProxyURL,
    ProxyURLError,
    env_proxies,
    mask_proxy_url,
    parse_proxy_url,
)


def test_lower_case_wins_and_empty_is_unset() -> None:
    env = {
        "HTTP_PROXY": "http://upper:1",
        "http_proxy": "http://lower:2",
        "HTTPS_PROXY": "http://upper:3",
        "https_proxy": "",
        "no_proxy": "a.example",
    }
    assert env_proxies(env) == {
        "HTTP_PROXY": ("http_proxy", "http://lower:2"),
        "HTTPS_PROXY": ("HTTPS_PROXY", "http://upper:3"),
        "NO_PROXY": ("no_proxy", "a.example"),
    }


def test_scheme_picks_the_variable_and_all_proxy_is_the_fallback() -> None:
    rules = ProxyRules.from_env({"HTTPS_PROXY": "http://s:1", "ALL_PROXY": "http://a:2"})
    https = rules.for_origin("https", "x.example", 443)
    http = rules.for_origin("http", "x.example", 80)
    assert https is not None
    assert https.host == "s"
    assert http is not None
    assert http.host == "a"
    assert ProxyRules.from_env({}).for_origin("https", "x", 443) is None
    assert ProxyRules(mode="none").for_origin("https", "x", 443) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("*", "anything.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("EXAMPLE.com", "Api.Example.COM", 443, True),
        ("example.com:8443", "example.com", 443, False),
        ("example.com:8443", "example.com", 8443, True),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("10.0.0.0/8", "ten.example", 80, False),
        ("192.168.1.5", "192.168.1.5", 80, True),
        ("::1", "::1", 80, True),
        ("[::1]:8080", "::1", 8080, True),
        ("fd00::/8", "[fd12::1]", 80, True),
        (" a.example , b.example ", "b.example", 80, True),
        ("a.example b.example", "b.example", 80, True),
        ("", "a.example", 80, False),
        ("localhost", "127.0.0.1", 80, False),  # names are not resolved
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    assert NoProxy.parse(no_proxy).matches(host, port) is bypass


def test_no_proxy_applies_to_environment_proxies_only() -> None:
    env = ProxyRules.from_env({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"})
    assert env.for_origin("https", "api.example.com", 443) is None
    explicit = ProxyRules(mode="url", url=parse_proxy_url("http://p:1"))
    assert explicit.for_origin("https", "api.example.com", 443) is not None


def test_proxy_url_forms_and_credentials() -> None:
    assert parse_proxy_url("proxy.corp:3128") == ProxyURL("proxy.corp", 3128)
    assert parse_proxy_url("http://proxy.corp") == ProxyURL("proxy.corp", 80)
    url = parse_proxy_url("http://bob%40corp:p%3Ass@[fd00::1]:3128/")
    assert (url.host, url.port, url.username, url.password) == ("fd00::1", 3128, "bob@corp", "p:ss")
    assert url.address == "[fd00::1]:3128"
    assert url.authorization() == b"Basic " + base64.b64encode(b"bob@corp:p:ss")
    assert "p:ss" not in repr(url)
    assert "p:ss" not in str(url)
    assert url.masked == "http://bob@corp:***@[fd00::1]:3128"
    assert parse_proxy_url("http://bob@p:1").authorization() == b"Basic " + base64.b64encode(
        b"bob:"
    )
    assert parse_proxy_url("http://p:1").authorization() is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("socks5://u:pw@h:1080", "SOCKS proxies are not supported"),
        ("socks4://h:1080", "SOCKS proxies are not supported"),
        ("https://u:pw@h:443", "TLS to the proxy itself"),
        ("http://:3128", "no host name"),
        ("http://h:x", "the port is not a number"),
    ],
)
def test_unusable_proxy_urls_say_why_masked(url: str, message: str) -> None:
    with pytest.raises(ProxyURLError, match=message) as info:
        parse_proxy_url(url)
    assert "pw" not in str(info.value)


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ProxyURLError, match=r"^ALL_PROXY=socks5://u:\*\*\*@h:1"):
        ProxyRules.from_env({"ALL_PROXY": "socks5://u:pw@h:1"})


def test_mask_url() -> None:
    assert mask_proxy_url("http://u:pw@h:1/x?y") == "http://u:***@h:1/x?y"
    assert mask_proxy_url("http://u@h:1") == "http://u@h:1"
    assert mask_proxy_url("http://h:1/a@b") == "http://h:1/a@b"
    assert mask_proxy_url("h:1") == "h:1"
