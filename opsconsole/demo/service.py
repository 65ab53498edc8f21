"""The demo's sample service: a real HTTP server on 127.0.0.1 whose new version (v2) is served to the
users a feature flag puts in the canary, with Prometheus metrics the console's gates read.

It reads the same flag file the engine writes, so moving a rollout step really moves users, and the
kill switch really sends everyone back to v1. Faults are injected into v2 only: a bad canary is what
guards exist to catch, and v1 staying healthy shows the rollback worked.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import random
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opsconsole.engine import in_rollout

VERSIONS = ("v1", "v2")
FAULTS = ("none", "canary-errors", "canary-latency")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the latency histogram; +Inf is implicit."""
CANARY_ERROR_RATE = 0.3
CANARY_EXTRA_LATENCY = (0.6, 0.9)
BASE_LATENCY = (0.002, 0.008)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FlagFileReader:
    """Who gets v2, from the seed-schema flag file. Any doubt (file missing, unreadable, not the schema)
    means everyone on v1: the old version is the safe one. The file is stat'ed per request but parsed
    only when it changed, so a busy service does not re-read JSON thousands of times a second."""

    def __init__(self, path: Path, flag: str) -> None:
        self.path = Path(path)
        self.flag = flag
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._percentage = 0

    def percentage(self) -> int:
        """The share of users (0..100) on v2 right now."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._key, self._percentage = None, 0
            return 0
        # The inode is part of the key because the engine replaces the file atomically (rename): a
        # same-sized rewrite within one mtime tick is still a different file.
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            with self._lock:
                if key != self._key:
                    self._percentage = self._read()
                    self._key = key
        return self._percentage

    def version_for(self, user: str) -> str:
        percentage = self.percentage()
        return "v2" if percentage > 0 and in_rollout(percentage, self.flag, user) else "v1"

    def _read(self) -> int:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
            return 0
        flags: dict[str, Any] = doc["flags"]
        # Fail safe: anything but an explicit false counts as shut down. The kill switch may also turn
        # the shutdown on as a flag of its own.
        if doc.get("emergency_shutdown", False) is not False or _enabled(flags.get("emergency_shutdown")):
            return 0
        entry = flags.get(self.flag)
        if not _enabled(entry):
            return 0
        assert isinstance(entry, dict)
        raw = entry.get("rollout_percentage")
        if raw is None and entry.get("rollout_strategy") != "percentage":
            return 100  # a plain boolean flag that is on
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            return 0  # Python's json also accepts NaN and Infinity
        return max(0, min(100, int(raw)))


def _enabled(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("enabled") is True


@dataclass(frozen=True)
class Tuning:
    """How deployed changes alter every answer, whatever the version: the delay drawn for a request
    becomes `delay * latency_factor + latency_offset` (seconds), and a further `error_rate` of the
    answers fail with 500. The demo agent's improvements are made of these."""

    latency_factor: float = 1.0
    latency_offset: float = 0.0
    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency_factor) and self.latency_factor >= 0):
            raise ValueError(f"latency_factor must be a number >= 0, got {self.latency_factor!r}")
        if not (math.isfinite(self.latency_offset) and -1.0 <= self.latency_offset <= 5.0):
            raise ValueError(f"latency_offset must be seconds in -1..5, got {self.latency_offset!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be 0..1, got {self.error_rate!r}")


def compose(tunings: Iterable[Tuning]) -> Tuning:
    """Several changes live at once: factors multiply, offsets add, error rates combine as
    independent chances (two 10% failures fail 19%, not 20%)."""
    factor, offset, ok = 1.0, 0.0, 1.0
    for t in tunings:
        factor *= t.latency_factor
        offset += t.latency_offset
        ok *= 1.0 - t.error_rate
    return Tuning(factor, max(-1.0, min(5.0, offset)), max(0.0, min(1.0, 1.0 - ok)))


@dataclass(frozen=True)
class Totals:
    """Everything answered since the start, all versions together (what the demo agent analyses)."""

    at: float
    requests: int
    errors: int
    buckets: tuple[int, ...]
    """Answers per latency bucket (not cumulative), `BUCKETS` then +Inf."""


class _Metrics:
    """Request counters and latency histograms, updated by many handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Every version x code series exists from the start, at 0, so the first error shows as an
        # increase rather than as a new series.
        self._requests = {(v, code): 0 for v in VERSIONS for code in ("200", "500")}
        self._buckets = {v: [0] * (len(BUCKETS) + 1) for v in VERSIONS}
        self._sums = dict.fromkeys(VERSIONS, 0.0)

    def observe(self, version: str, code: int, seconds: float) -> None:
        index = bisect.bisect_left(BUCKETS, seconds)  # first bound >= seconds: `le` is inclusive
        with self._lock:
            key = (version, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._buckets[version][index] += 1
            self._sums[version] += seconds

    def totals(self) -> Totals:
        with self._lock:
            requests = sum(self._requests.values())
            errors = sum(n for (_, code), n in self._requests.items() if code.startswith("5"))
            buckets = tuple(sum(per[i] for per in self._buckets.values()) for i in range(len(BUCKETS) + 1))
        return Totals(time.monotonic(), requests, errors, buckets)

    def render(self, canary_percentage: int) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            buckets = {v: list(counts) for v, counts in self._buckets.items()}
            sums = dict(self._sums)
        lines = [
            "# HELP http_requests_total Requests answered, by version and status code.",
            "# TYPE http_requests_total counter",
        ]
        lines += [f'http_requests_total{{version="{v}",code="{code}"}} {n}' for (v, code), n in requests]
        lines += [
            "# HELP http_request_duration_seconds Time spent answering a request, injected delay included.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for version in VERSIONS:
            cumulative = 0
            for bound, count in zip((*BUCKETS, "+Inf"), buckets[version], strict=True):
                cumulative += count
                lines.append(
                    f'http_request_duration_seconds_bucket{{version="{version}",le="{bound}"}} {cumulative}'
                )
            lines.append(f'http_request_duration_seconds_sum{{version="{version}"}} {sums[version]!r}')
            lines.append(f'http_request_duration_seconds_count{{version="{version}"}} {cumulative}')
        lines += [
            "# HELP demo_canary_percentage Share of users (0..100) the flag file sends to v2.",
            "# TYPE demo_canary_percentage gauge",
            f"demo_canary_percentage {canary_percentage}",
        ]
        return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: DemoService) -> None:
        self.service = service
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is normal for a demo under generated load


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the traffic generator reuses its connections
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    # Headers and body leave in one segment: two small writes meet Nagle and delayed ACK and every
    # keep-alive request would stall ~40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def handle(self) -> None:
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        try:
            super().handle()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        started = time.perf_counter()
        parts = urlsplit(self.path)
        service = self.server.service
        if parts.path == "/":
            users = parse_qs(parts.query).get("user") or ["anonymous"]
            status, version, answer = service.answer(users[0], started)
            self._send(status, json.dumps(answer).encode(), "application/json", {"X-Version": version})
        elif parts.path == "/health":
            self._send(200, b'{"status": "ok"}', "application/json")
        elif parts.path == "/metrics":
            self._send(200, service.metrics_text().encode(), METRICS_CONTENT_TYPE)
        else:
            self._send(404, json.dumps({"error": f"no such path: {parts.path}"}).encode(), "application/json")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass  # the console owns the terminal


class DemoService:
    """The sample service. `start()` binds (port 0 = any free port) and serves in a daemon thread."""

    def __init__(
        self,
        flag_file: Path,
        flag: str = "new_checkout",
        host: str = "127.0.0.1",
        port: int = 0,
        fault: str = "none",
        seed: int = 0,
    ) -> None:
        self.flags = FlagFileReader(Path(flag_file), flag)
        self.host = host
        self._requested_port = port
        self._fault = "none"
        self.fault = fault
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._metrics = _Metrics()
        self._tunings: dict[str, Tuning] = {}
        self._tunings_lock = threading.Lock()
        self._tuning = Tuning()
        """The composition of `_tunings`, replaced whole: handler threads read it without the lock."""
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def fault(self) -> str:
        """Injected into v2: none | canary-errors (~30% answer 500) | canary-latency (+600-900 ms)."""
        return self._fault

    @fault.setter
    def fault(self, value: str) -> None:
        if value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; expected one of {', '.join(FAULTS)}")
        self._fault = value

    @property
    def tuning(self) -> Tuning:
        """What the deployed changes do together, applied to every answer."""
        return self._tuning

    def tunings(self) -> dict[str, Tuning]:
        """The deployed changes by name."""
        with self._tunings_lock:
            return dict(self._tunings)

    def set_tuning(self, name: str, tuning: Tuning) -> None:
        """Deploy a change under `name` (again: replaces it, so deploying twice is deploying once)."""
        with self._tunings_lock:
            self._tunings[name] = tuning
            self._tuning = compose(self._tunings.values())

    def clear_tuning(self, name: str) -> bool:
        """Undo exactly the change deployed under `name`; False when none was."""
        with self._tunings_lock:
            found = self._tunings.pop(name, None) is not None
            self._tuning = compose(self._tunings.values())
        return found

    def totals(self) -> Totals:
        return self._metrics.totals()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the demo service is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DemoService:
        if self._server is not None:
            raise RuntimeError("the demo service is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="demo-service",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # cuts injected delays short
        server.shutdown()
        with server.connections_lock:
            open_connections = list(server.connections)
        for conn in open_connections:  # keep-alive handlers would otherwise serve on after stop
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=2.0)
        self._server = self._thread = None

    def __enter__(self) -> DemoService:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- request handling (called from handler threads)

    def answer(self, user: str, started: float) -> tuple[int, str, dict[str, str]]:
        version = self.flags.version_for(user)
        fault = self._fault
        tuning = self._tuning
        tuned = False
        with self._rng_lock:
            delay = self._rng.uniform(*BASE_LATENCY)
            failed = version == "v2" and fault == "canary-errors" and self._rng.random() < CANARY_ERROR_RATE
            if version == "v2" and fault == "canary-latency":
                delay += self._rng.uniform(*CANARY_EXTRA_LATENCY)
            if tuning.error_rate > 0 and not failed:
                failed = tuned = self._rng.random() < tuning.error_rate
        delay = max(0.0, delay * tuning.latency_factor + tuning.latency_offset)
        self._stopping.wait(delay)
        status = HTTPStatus.INTERNAL_SERVER_ERROR if failed else HTTPStatus.OK
        # Recorded before the answer is written: once a client has its response, /metrics counts it.
        self._metrics.observe(version, int(status), time.perf_counter() - started)
        body = {"version": version, "user": user}
        if failed:
            body["error"] = "injected by a deployed improvement" if tuned else "injected fault: canary-errors"
        return int(status), version, body

    def metrics_text(self) -> str:
        return self._metrics.render(self.flags.percentage())
