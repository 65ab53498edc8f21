"""Credentials never shown, never stored: the text form of a URL, DSN or header without its secret.

A metrics or health URL may carry `user:password@` or a `?token=`; an httpx error quotes the URL it
failed on. The real URL is still what a request uses; whatever text a source builds from it (the
verdict's source, a reason, an error) is made here, so neither the store nor any screen gets the
secret. Over-redacting a harmless value is the accepted cost of a simple rule.
"""

from __future__ import annotations

import re

MASK = "***"

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
# A name is secret when one of its words is one of these, or it contains one of the longer stems.
_SECRET_WORDS = frozenset({"key", "sig", "pwd", "pass", "pw", "sid", "jwt", "otp", "code"})
_SECRET_STEMS = ("token", "secret", "passw", "apikey", "signature", "credential", "auth", "session", "cookie")
_PARAM = re.compile(r"(^|[?&;#])([^=&;#?]*)=([^&;#]*)")
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token)(\s*[:=]\s*)([^\r\n,;]+)"
)
_ASSIGN = re.compile(
    r"(?i)(--?|\b)([a-z0-9_.-]*(?:token|secret|passw(?:or)?d|apikey|api_key|api-key))(=)"
    r"([^\s&;'\"]+?)(?=[.,:)\]]*(?:\s|$|[&;'\"]))"
)


def secret_name(name: str) -> bool:
    """Whether a query or form parameter called `name` holds a credential (token, api_key, sig…)."""
    low = name.lower()
    if any(stem in low for stem in _SECRET_STEMS):
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[^a-z0-9]+", low))


def _param(match: re.Match[str]) -> str:
    lead, name, value = match.groups()
    if value and secret_name(name):
        return f"{lead}{name}={MASK}"
    return match.group()


def redact_url(url: str) -> str:
    """`url` with its password (or a bare userinfo, which is often a token) and the values of
    secret-looking query and fragment parameters replaced by `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _PARAM.sub(_param, url) if "=" in url else url
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    userinfo, at_sign, host = authority.rpartition("@")
    if at_sign:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon and user else f"{MASK}@{host}"
    return f"{scheme}://{authority}{_PARAM.sub(_param, tail)}"


def _url_in_text(match: re.Match[str]) -> str:
    # Punctuation that ends a sentence around a URL is not part of it ("refused: http://h/m?t=x:").
    url = match.group()
    core = url.rstrip(".,:;)]}!?")
    return redact_url(core) + url[len(core) :]


def redact_text(text: str) -> str:
    """Free text (an error message, a command line) with every URL in it redacted, and the values of
    Authorization/Cookie headers and `--token=...`-style assignments replaced by `***`."""
    if not text:
        return text
    out = _URL.sub(_url_in_text, text)
    out = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    return _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", out)
