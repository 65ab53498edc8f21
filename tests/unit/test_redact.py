"""Redaction of URLs, DSNs and headers: what a source quotes in its errors and verdicts."""

from __future__ import annotations

import pytest

from opsconsole.engine.redact import redact_text, redact_url, secret_name


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:s3cr3t@127.0.0.1:9090/metrics?token=abc", "http://u:***@127.0.0.1:9090/metrics?token=***"),
        ("https://ghp_tokenonly@host/x", "https://***@host/x"),
        ("postgresql://bob:p@ss@db:5432/ops", "postgresql://bob:***@db:5432/ops"),
        (
            "http://h/m?a=1&api_key=k&access_token=t;sig=s#id_token=x",
            "http://h/m?a=1&api_key=***&access_token=***;sig=***#id_token=***",
        ),
        (
            "http://h/m?X-Amz-Signature=abc&X-Amz-Date=20260101",
            "http://h/m?X-Amz-Signature=***&X-Amz-Date=20260101",
        ),
        ("http://127.0.0.1:8080/metrics", "http://127.0.0.1:8080/metrics"),
        ("http://h/m?design=3&monkey=1&limit=5", "http://h/m?design=3&monkey=1&limit=5"),
        ("http://h/m?password=", "http://h/m?password="),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_secret_names():
    for name in (
        "token",
        "KEY",
        "apikey",
        "api-key",
        "client_secret",
        "password",
        "passwd",
        "Authorization",
        "sig",
        "X-Amz-Signature",
        "session_id",
    ):
        assert secret_name(name), name
    for name in ("design", "monkey", "limit", "window", "version", "region"):
        assert not secret_name(name), name


def test_redact_text_finds_urls_headers_and_assignments_in_free_text():
    text = (
        "ConnectError: http://u:pw@h:1/m?token=t1: [Errno 111] refused\n"
        "Authorization: Bearer abc.def; cookie: sid=1\n"
        "curl --token=t2 https://x/y?api_key=k"
    )
    out = redact_text(text)
    for secret in ("pw@", "t1", "abc.def", "sid=1", "t2", "=k"):
        assert secret not in out, secret
    assert "http://u:***@h:1/m?token=***: [Errno 111]" in out and "Authorization: ***" in out
    assert (
        redact_text("error_rate 0.5% <= 1% from http://h/metrics")
        == "error_rate 0.5% <= 1% from http://h/metrics"
    )
    assert redact_text("bad query 'x': unexpected token ')'") == "bad query 'x': unexpected token ')'"
