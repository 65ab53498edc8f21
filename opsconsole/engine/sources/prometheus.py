"""A metric source that asks a Prometheus server: gates, guards and alarm rules write PromQL.

The engine reads metrics synchronously during a tick (`query`), after one asynchronous `refresh`
per tick. So the source keeps the set of queries it is asked (those of the configuration are known
up front; any other is added the first time it is asked, and answered from the next refresh on), and
`refresh` runs each of them once through `/api/v1/query`, concurrently, each call bounded by the
source's timeout. Sparklines come from `/api/v1/query_range` for the queries a pane asked `series` of.

Anything that is not exactly one number is no answer: an empty result, NaN, `bad_data` or another
API error, an HTTP error, a timeout, garbage. The Observation then carries an error naming the query
and Prometheus's own message, so the verdict is `unknown` and the reason says why. The bearer token
or basic-auth password is read from the environment at each refresh and never appears in a message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..model import Observation
from ..redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_BODY_BYTES", "MAX_QUERIES", "PrometheusSource", "promql_problem"]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""An API answer larger than this is refused rather than parsed on the engine's loop."""
MAX_QUERIES = 512
"""Bound on the distinct queries a source runs each refresh, whatever callers ask."""
CONCURRENCY = 8
"""Requests in flight at once to one server."""
MESSAGE_CHARS = 300
"""How much of Prometheus's message (or an error body) a reason quotes."""


def promql_problem(expr: str) -> str | None:
    """What is surely wrong with `expr` as PromQL (empty, unbalanced brackets or quotes), else None.
    Prometheus is the real judge: a query it refuses gives `unknown` with its message."""
    if not expr.strip():
        return "empty query"
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    escaped = False
    for column, ch in enumerate(expr, 1):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote != "`":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append((ch, column))
        elif ch in closing:
            if not stack or stack[-1][0] != closing[ch]:
                return f"column {column}: unexpected {ch!r}"
            stack.pop()
    if quote is not None:
        return f"unterminated string (opened with {quote})"
    if stack:
        ch, column = stack[-1]
        return f"column {column}: {ch!r} is never closed"
    return None


class SourceFailed(Exception):
    """The server could not be asked at all (down, timeout, auth refused, garbage): the source's error."""


class QueryFailed(Exception):
    """The server answered, but not with one number for this query; the message is the whole story."""

    def __init__(self, message: str, no_series: bool = False) -> None:
        super().__init__(message)
        self.no_series = no_series


class PrometheusSource:
    """One Prometheus server's answers to the queries of an environment's gates, guards and rules."""

    incremental = False
    """Sparkline points are fetched (query_range), not computed from this source's own scrapes."""

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        *,
        step: float = 1.0,
        keep: float = 0.0,
        token_env: str | None = None,
        basic_auth_env: str | None = None,
        queries: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown = redact_url(self.url)
        """The URL as errors and verdicts quote it: without its credentials."""
        self.timeout = timeout
        self.window = 0.0  # PromQL says its own ranges ([1m]); kept for the scrape source's callers
        self.step = max(step, 0.001)
        self.keep = keep
        self.token_env = token_env
        self.basic_auth_env = basic_auth_env
        self._environ = environ
        self.last_error: str | None = None
        """The last refresh's error reaching the server; while set, every query answers it."""
        self.last_refresh: float | None = None
        self._wanted: dict[str, None] = dict.fromkeys(q for q in queries if q)
        self._answers: dict[str, Observation] = {}
        self._series_wanted: dict[str, int] = {}
        self._series: dict[str, list[float | None]] = {}
        self._secrets: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------------ reading

    def query(self, expr: str, now: float) -> Observation:
        """The answer to `expr` from the last refresh; a query never asked before is asked from the
        next refresh on, and answers "not asked yet" (an error: unknown, never a pass) until then."""
        answer = self._answers.get(expr)
        if answer is not None:
            return answer
        if expr not in self._wanted and len(self._wanted) < MAX_QUERIES:
            self._wanted[expr] = None
        if self.last_error is not None:
            return self._failed(expr, self.last_error, self.last_refresh or now)
        return Observation(
            error=f"query {expr!r} not asked of {self.shown} yet (from the next refresh on)",
            source=self.shown,
            at=now,
        )

    def series(self, expr: str, points: int) -> list[float | None]:
        """The last `points` values of `expr`, one a `step`, oldest first, padded with None; fetched
        with /api/v1/query_range from the next refresh on."""
        if points <= 0:
            return []
        if expr not in self._series_wanted and len(self._series_wanted) >= MAX_QUERIES:
            return [None] * points
        self._series_wanted[expr] = max(points, self._series_wanted.get(expr, 0))
        values = self._series.get(expr, [])[-points:]
        return [None] * (points - len(values)) + values

    # ------------------------------------------------------------------------------------ refresh

    async def refresh(self, client: httpx.AsyncClient, now: float) -> str | None:
        """Ask every wanted query once (and the wanted series), each call bounded by `timeout`;
        record the answers, and return the error reaching the server, if any."""
        self.last_refresh = now
        try:
            headers = self._headers()
        except SourceFailed as exc:
            return self._fail_all(str(exc), now)
        sem = asyncio.Semaphore(CONCURRENCY)
        wanted = list(self._wanted)
        down: list[SourceFailed] = []
        results = await asyncio.gather(*(self._instant(client, headers, sem, expr, down) for expr in wanted))
        answers: dict[str, Observation] = {}
        source_error: str | None = None
        for expr, result in zip(wanted, results, strict=True):
            if isinstance(result, SourceFailed):
                source_error = source_error or str(result)
                answers[expr] = self._failed(expr, str(result), now)
            elif isinstance(result, QueryFailed):
                answers[expr] = self._failed(expr, str(result), now, no_series=result.no_series)
            else:
                answers[expr] = Observation(value=result, source=self.shown, at=now)
        self._answers = answers
        self.last_error = source_error
        if self._series_wanted and source_error is None:
            await self._refresh_series(client, headers, sem)
        return self.last_error

    async def check(self, client: httpx.AsyncClient) -> None:
        """Reach the server once, as a query does (auth and all); raises SourceFailed or QueryFailed."""
        headers = self._headers()
        result = await self._instant(client, headers, asyncio.Semaphore(1), "vector(1)")
        if isinstance(result, Exception):
            raise result

    def _fail_all(self, error: str, now: float) -> str:
        self.last_error = error
        self._answers = {expr: self._failed(expr, error, now) for expr in self._wanted}
        return error

    def _failed(self, expr: str, message: str, at: float, no_series: bool = False) -> Observation:
        return Observation(
            error=self._clean(f"query {expr!r}: {message}"), source=self.shown, at=at, no_series=no_series
        )

    def _clean(self, text: str) -> str:
        """`text` without any credential: known secret values masked, then URLs and headers redacted."""
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return redact_text(text)

    def _headers(self) -> dict[str, str]:
        env = os.environ if self._environ is None else self._environ
        headers = {"Accept": "application/json"}
        if self.token_env:
            token = env.get(self.token_env, "")
            if not token:
                raise SourceFailed(f"environment variable {self.token_env} (bearer token) is not set")
            self._secrets = (token,)
            headers["Authorization"] = f"Bearer {token}"
        elif self.basic_auth_env:
            pair = env.get(self.basic_auth_env, "")
            if ":" not in pair:
                raise SourceFailed(
                    f"environment variable {self.basic_auth_env} (basic auth) is not set as user:password"
                )
            encoded = base64.b64encode(pair.encode()).decode()
            self._secrets = (pair, pair.partition(":")[2], encoded)
            headers["Authorization"] = f"Basic {encoded}"
        return headers

    async def _instant(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        sem: asyncio.Semaphore,
        expr: str,
        down: list[SourceFailed] | None = None,
    ) -> float | SourceFailed | QueryFailed:
        """One query's number or why not. `down` is shared by a refresh's queries: once the server is
        found down (refused, hung, auth), queries still waiting for a slot fail with that at once, so
        a refresh waits about one timeout for a hung server, not one per batch of queries."""
        async with sem:
            if down:
                return down[0]
            try:
                data = await self._call(client, headers, "/api/v1/query", {"query": expr})
                return _one_number(expr, data)
            except SourceFailed as exc:
                if down is not None:
                    down.append(exc)
                return exc
            except QueryFailed as exc:
                return exc

    async def _refresh_series(
        self, client: httpx.AsyncClient, headers: dict[str, str], sem: asyncio.Semaphore
    ) -> None:
        end = time.time()

        async def one(expr: str, points: int) -> None:
            start = end - self.step * (points - 1)
            params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{self.step:g}"}
            async with sem:
                try:
                    data = await self._call(client, headers, "/api/v1/query_range", params)
                except (SourceFailed, QueryFailed):
                    self._series[expr] = [None] * points
                    return
            self._series[expr] = _points(data, start, self.step, points)

        await asyncio.gather(*(one(expr, n) for expr, n in self._series_wanted.items()))

    async def _call(
        self, client: httpx.AsyncClient, headers: dict[str, str], path: str, params: dict[str, str]
    ) -> Any:
        """The `data` of a successful API answer. Raises SourceFailed when the server cannot be asked,
        QueryFailed when it refused this query (bad_data, execution errors)."""
        try:
            status, body = await asyncio.wait_for(
                self._download(client, headers, path, params), timeout=self.timeout + 0.5
            )
        except SourceFailed:
            raise
        except Exception as exc:  # any failure of the source is "no data", never a crash of the runner
            raise SourceFailed(self._clean(_describe(exc, self.shown, self.timeout))) from None
        try:
            doc = json.loads(body)
        except ValueError:
            if status != 200:
                raise SourceFailed(
                    self._clean(f"HTTP {status} from {self.shown}: {_excerpt(body)}")
                ) from None
            raise SourceFailed(
                f"answer from {self.shown} is not JSON: {self._clean(_excerpt(body))}"
            ) from None
        if not isinstance(doc, dict):
            raise SourceFailed(f"answer from {self.shown} is not a Prometheus API object")
        if doc.get("status") != "success":
            kind = str(doc.get("errorType") or "error")
            message = self._clean(_excerpt(str(doc.get("error") or "no message")))
            if status in (401, 403) or status >= 500 and kind not in ("execution", "timeout"):
                raise SourceFailed(f"HTTP {status} {kind} from {self.shown}: {message}")
            raise QueryFailed(f"Prometheus says {kind}: {message}")
        if status != 200:
            raise SourceFailed(f"HTTP {status} from {self.shown}")
        return doc.get("data")

    async def _download(
        self, client: httpx.AsyncClient, headers: dict[str, str], path: str, params: dict[str, str]
    ) -> tuple[int, bytes]:
        from .scrape import read_capped

        url = self.url + path
        async with client.stream(
            "GET", url, params=params, headers=headers, timeout=self.timeout
        ) as response:
            body = await read_capped(
                response,
                MAX_BODY_BYTES,
                lambda: SourceFailed(
                    f"answer larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB from {self.shown}"
                ),
            )
            if response.status_code in (401, 403) and not body.lstrip().startswith(b"{"):
                raise SourceFailed(
                    self._clean(
                        f"HTTP {response.status_code} from {self.shown} (credentials refused): "
                        f"{_excerpt(bytes(body))}"
                    )
                )
            return response.status_code, bytes(body)


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _number(sample: Any) -> float:
    """The value of a `[timestamp, "value"]` pair."""
    if not isinstance(sample, list) or len(sample) != 2:
        raise QueryFailed(f"unexpected sample {_excerpt(json.dumps(sample))}")
    try:
        return float(sample[1])
    except (TypeError, ValueError):
        raise QueryFailed(f"sample value {_excerpt(str(sample[1]))!r} is not a number") from None


def _one_number(expr: str, data: Any) -> float:
    if not isinstance(data, dict):
        raise QueryFailed("answer has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        value = _number(result)
    elif kind == "vector":
        if not isinstance(result, list):
            raise QueryFailed("answer's result is not a list")
        if not result:
            raise QueryFailed("returned no series", no_series=True)
        if len(result) > 1:
            raise QueryFailed(
                f"returned {len(result)} series, a gate needs one number (aggregate them, e.g. sum(...))"
            )
        entry = result[0]
        value = _number(entry.get("value") if isinstance(entry, dict) else None)
    elif kind == "matrix":
        raise QueryFailed("returns a range vector; a gate needs one number (e.g. rate(...[1m]))")
    else:
        raise QueryFailed(f"returns a {_excerpt(str(kind))}, not a number")
    if math.isnan(value):
        raise QueryFailed("the value is NaN (e.g. a ratio of two zero rates: no traffic)")
    return value


def _points(data: Any, start: float, step: float, points: int) -> list[float | None]:
    """A matrix of one series laid on the `points` steps from `start`; several series are summed
    per step (a sparkline shows one line)."""
    out: list[float | None] = [None] * points
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return out
    for entry in result:
        values = entry.get("values") if isinstance(entry, dict) else None
        for pair in values if isinstance(values, list) else ():
            try:
                at, value = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            index = round((at - start) / step)
            if 0 <= index < points and not math.isnan(value):
                prior = out[index]
                out[index] = value if prior is None else prior + value
    return out


def _describe(exc: BaseException, url: str, timeout: float) -> str:
    from .scrape import describe_request_error

    return describe_request_error(exc, url, f"{timeout:g}", "request to")
