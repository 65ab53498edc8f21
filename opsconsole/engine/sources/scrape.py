"""A metric source that scrapes a Prometheus `/metrics` endpoint and answers gate queries itself.

Without a Prometheus server in between, rates and percentiles must come from our own history of
scrapes: each `refresh` appends a snapshot, and `query` diffs the snapshots that cover the window
(the query language and its arithmetic are in `query.py`). A failed scrape is kept as the source's
error, and queries answer "no data" with it rather than numbers from before the failure.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..model import Observation
from ..redact import redact_text, redact_url
from .promtext import PromTextError, Sample, parse

# The query language used to live here; callers import these names from this module.
from .query import (
    FUNCTIONS,
    NOT_ENOUGH,
    Matcher,
    NoData,
    Query,
    QueryError,
    Selector,
    Snapshot,
    evaluate,
    histogram_quantile,
    parse_query,
    validate_query,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "FUNCTIONS",
    "MAX_BODY_BYTES",
    "MAX_SNAPSHOTS",
    "NOT_ENOUGH",
    "Matcher",
    "NoData",
    "Query",
    "QueryError",
    "ScrapeSource",
    "Selector",
    "Snapshot",
    "evaluate",
    "histogram_quantile",
    "parse_query",
    "validate_query",
]

MAX_BODY_BYTES = 16 * 1024 * 1024
"""A /metrics body larger than this is refused rather than parsed on the engine's loop."""
MAX_SNAPSHOTS = 2000
"""Hard bound on kept snapshots whatever the refresh rate, so memory stays bounded."""


class ScrapeSource:
    """History of scrapes of one endpoint, and the queries gates and alarm rules ask of it."""

    incremental = True
    """Each sparkline point is the query's value at one scrape of this source's own history."""

    def __init__(self, url: str, timeout: float = 2.0, window: float = 10.0, keep: float = 0.0) -> None:
        self.url = url
        self.shown = redact_url(url)
        """The URL as errors and verdicts quote it: without its credentials (the request uses `url`)."""
        self.timeout = timeout
        self.window = window
        self.keep = keep
        """Extra seconds of history kept beyond the window, for `series` (sparklines)."""
        self.last_error: str | None = None
        """The last refresh's error; while set, queries answer no data rather than stale numbers."""
        self.last_refresh: float | None = None
        self._history: deque[Snapshot] = deque(maxlen=MAX_SNAPSHOTS)
        self._answers: dict[tuple[str, float], Observation] = {}
        """Answers since the last snapshot: every rollout's guard asks the same query each tick."""

    async def refresh(self, client: httpx.AsyncClient, now: float) -> str | None:
        """Scrape once, bounded by `timeout`; record the snapshot or the error, and return the error."""
        self.last_refresh = now
        try:
            text = await asyncio.wait_for(self._download(client), timeout=self.timeout)
            samples = parse(text)
        except PromTextError as exc:
            self.last_error = f"bad exposition at line {exc.line}: {exc.reason} ({self.shown})"
        except Exception as exc:  # any failure of a source is "no data", never a crash of the runner
            # httpx's own messages may quote the URL it was given, credentials and all.
            self.last_error = redact_text(_describe(exc, self.shown, self.timeout))
        else:
            self.last_error = None
            self.record(samples, now)
        return self.last_error

    async def _download(self, client: httpx.AsyncClient) -> str:
        headers = {"Accept": "text/plain;version=0.0.4"}
        async with client.stream("GET", self.url, headers=headers, timeout=self.timeout) as response:
            if response.status_code != 200:
                raise _Refused(f"HTTP {response.status_code} from {self.shown}")
            body = await read_capped(
                response,
                MAX_BODY_BYTES,
                lambda: _Refused(f"body larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB from {self.shown}"),
            )
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(f"body is not UTF-8 (byte {exc.start}) from {self.shown}") from None

    def record(self, samples: Iterable[Sample], at: float) -> None:
        """Append one scrape taken at `at`, dropping what no query can need any more."""
        self._answers.clear()
        while self._history and self._history[-1].at >= at:
            self._history.pop()  # the clock went back or the same instant was scraped twice
        self._history.append(Snapshot.of(at, samples))
        horizon = at - self.window - self.keep
        # Keep the newest snapshot at or before the horizon: it is the base a full window diffs against.
        while len(self._history) >= 2 and self._history[1].at <= horizon:
            self._history.popleft()

    def query(self, expr: str, now: float) -> Observation:
        key = (expr, now)
        answer = self._answers.get(key)
        if answer is None or self.last_error is not None:
            value, error, detail, no_series = self._value(expr, now)
            answer = Observation(
                value=value, error=error, source=self.shown, at=now, detail=detail, no_series=no_series
            )
            if len(self._answers) < 1024:
                self._answers[key] = answer
        return answer

    def series(self, expr: str, points: int) -> list[float | None]:
        """The value of `expr` at each of the last `points` snapshots, oldest first, padded with None."""
        snapshots = list(self._history)[-points:] if points > 0 else []
        values = [self._value(expr, snap.at, check_error=False)[0] for snap in snapshots]
        return [None] * (points - len(values)) + values

    def _value(
        self, expr: str, now: float, check_error: bool = True
    ) -> tuple[float | None, str | None, str, bool]:
        """(value, error, note, no_series): no_series when the endpoint answered but has nothing for
        `expr` yet; a failed scrape or a bad query is an error of the source, not a lack of series."""
        if check_error and self.last_error is not None:
            return None, self.last_error, "", False
        try:
            query = parse_query(expr)
        except QueryError as exc:
            return None, f"bad query {expr!r}: {exc}", "", False
        snapshots = [snap for snap in self._history if snap.at <= now]
        try:
            value, note = evaluate(query, snapshots, self.window, now)
        except NoData as exc:
            return None, str(exc), "", True
        if math.isnan(value):
            return None, f"{query.text} is NaN", note, False
        return value, None, note, False


class _Refused(Exception):
    """The endpoint answered, but not with something we can use; the message is the whole story."""


async def read_capped(response: httpx.Response, limit: int, too_large: Callable[[], Exception]) -> bytearray:
    """The response's body as it streams in (also the Prometheus source's); `too_large()` is raised
    as soon as it passes `limit` bytes, nothing more is read."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise too_large()
    return body


def _describe(exc: BaseException, url: str, timeout: float) -> str:
    if isinstance(exc, _Refused):
        return str(exc)
    return describe_request_error(exc, url, f"{timeout}", "scrape of")


def describe_request_error(exc: BaseException, url: str, timeout: str, request: str) -> str:
    """Why an HTTP request to `url` failed, in words (also the Prometheus source's): a timeout (after
    `timeout` seconds, as the caller words it), a refused or failed connection, an HTTP error, else
    "`request` URL failed" with the exception."""
    import httpx

    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout}s: {url}"
    if isinstance(exc, httpx.ConnectError):
        if _caused_by(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return f"connection refused: {url}"
        return f"cannot connect to {url}: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error from {url}: {type(exc).__name__}: {exc}"
    return f"{request} {url} failed: {type(exc).__name__}: {exc}"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """httpx wraps the OS error (anyio: "All connection attempts failed"); the chain says what it was."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; the bound only guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
