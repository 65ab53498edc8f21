"""What every CloudWatch call shares: boto3 imported lazily, clients with connect and read timeouts,
calls run on a small pool of threads of their own, and failures said in words without a secret.

The pool is not asyncio's default executor: the runner reads the store through that one, and a
CloudWatch endpoint that hangs must never leave the store (nor the kill switch) waiting for a thread.
Each call is bounded twice: by botocore's timeouts, and by the event loop, which stops waiting after
the timeout even if the thread is still stuck.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..redact import redact_text, redact_url

__all__ = ["AwsFailed", "call", "client", "describe", "where"]

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="opsconsole-aws")
_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str | None, str, float, int], Any] = {}

_THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
_REFUSED = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "MissingAuthenticationToken",
    }
)


class AwsFailed(Exception):
    """CloudWatch could not be asked (unreachable, timeout, throttled, credentials); `query` is True
    when it answered but refused what was asked (a bad query)."""

    def __init__(self, message: str, *, query: bool = False) -> None:
        super().__init__(message)
        self.query = query


def where(region: str | None, endpoint: str) -> str:
    """How messages name the service: the endpoint override when there is one, else the region."""
    return f"cloudwatch {redact_url(endpoint)}" if endpoint else f"cloudwatch {region or '(default region)'}"


def client(service: str, region: str | None, endpoint: str, timeout: float, attempts: int = 1) -> Any:
    """A boto3 client (made once per settings; boto3 clients are safe to share between threads,
    sessions are not, hence the lock). Call it in a thread: importing boto3 takes a while."""
    key = (service, region, endpoint, timeout, attempts)
    with _LOCK:
        made = _CLIENTS.get(key)
        if made is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": attempts, "mode": "standard"},
                region_name=region,
            )
            made = boto3.session.Session().client(service, endpoint_url=endpoint or None, config=config)
            _CLIENTS[key] = made
    return made


def forget_clients() -> None:
    """Drop the clients made so far: the next ones read boto3's chain again (credentials are taken
    when a client is made). For tests, whose environments differ one from the next."""
    with _LOCK:
        _CLIENTS.clear()


async def call(blocking: Callable[[], T], timeout: float, shown: str) -> T:
    """`blocking()` on the AWS pool; AwsFailed when it fails or takes longer than `timeout`."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_POOL, blocking)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise AwsFailed(f"timeout after {timeout:g}s: {shown}") from None
    except AwsFailed:
        raise
    except Exception as exc:  # a failure of the service is an answer of "unknown", never a crash
        raise AwsFailed(describe(exc, shown)) from None


def describe(exc: BaseException, shown: str) -> str:
    """`exc` in words naming `shown`, without credentials."""
    if isinstance(exc, AwsFailed):
        return str(exc)
    if isinstance(exc, ImportError):
        return f"{shown} needs boto3, which is not installed (pip install 'opsconsole[aws]')"
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return (
            f"no AWS credentials for {shown} (boto3 looks in the environment, ~/.aws and the instance role)"
        )
    if isinstance(exc, bx.NoRegionError):
        return f"no AWS region for {shown}: set region: or AWS_REGION"
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return redact_text(f"timeout: {shown}: {exc}")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError):
        cause = (
            "connection refused" if "refused" in repr(exc.__context__ or exc).lower() else "cannot connect"
        )
        return redact_text(f"{cause}: {shown}: {exc}")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = " ".join(str(error.get("Message", "")).split())[:300] or f"HTTP {status}"
        if "<html" in message.lower():
            message = f"HTTP {status} (an error page, not an AWS answer)"
        if code in _THROTTLED:
            return redact_text(f"throttled by {shown} ({code}): {message}")
        if code in _REFUSED or status in (401, 403):
            return redact_text(f"credentials refused by {shown} ({code}): {message}")
        return redact_text(f"{shown} says {code}: {message}")
    return redact_text(f"{shown}: {type(exc).__name__}: {exc}")


def is_query_error(exc: BaseException) -> bool:
    """The service answered but refused or failed the request (400: a bad query; 5xx: moto and
    CloudWatch fail some statistics this way), as opposed to being unreachable, throttling or
    refusing the credentials: asking each query alone may then tell which one is at fault."""
    if isinstance(exc, ImportError | AwsFailed):
        return False
    from botocore import exceptions as bx

    if not isinstance(exc, bx.ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _THROTTLED or code in _REFUSED or not isinstance(status, int):
        return False
    return status == 400 or status >= 500
