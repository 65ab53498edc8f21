"""Generated user traffic for the demo: steady requests from many users, so the canary's metrics move.

Requests are paced on one shared schedule (slot after slot at the target rate) and sent by a pool of
workers, each with its own keep-alive connection. The pool is what keeps throughput up when the
canary gets slow: one slow answer holds one worker, not the schedule. A worker that falls far behind
skips the missed slots instead of bursting to catch up, so a stall never turns into a flood.

Only 127.0.0.1 is ever contacted: this is a load generator, and it must not be pointable elsewhere.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import time
from collections import Counter
from urllib.parse import quote, urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
MAX_LAG = 0.5
"""Seconds a worker may run behind the schedule before the missed slots are dropped."""


class TrafficGenerator:
    def __init__(
        self,
        base_url: str,
        rps: float = 40.0,
        users: int = 1000,
        concurrency: int = 8,
        max_seconds: float = 300.0,
        max_requests: int | None = None,
        seed: int = 0,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"traffic base URL must be http://127.0.0.1:<port>, not {base_url!r}")
        if parts.hostname not in LOOPBACK_NAMES:
            raise ValueError(f"traffic goes to 127.0.0.1 only, not to {parts.hostname!r} ({base_url})")
        if rps <= 0 or users < 1 or concurrency < 1 or max_seconds <= 0:
            raise ValueError("rps and max_seconds must be > 0, users and concurrency >= 1")
        if max_requests is not None and max_requests < 0:
            raise ValueError("max_requests must be >= 0")
        self.port = parts.port or 80
        self.path = parts.path.rstrip("/") + "/"
        self.rps = rps
        self.users = users
        self.concurrency = concurrency
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.timeout = timeout
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[http.client.HTTPConnection] = set()
        self._next_at = 0.0
        self._deadline = 0.0
        self._claimed = 0
        self._sent = 0
        self._failed = 0
        self._by_version: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()

    # -- results

    @property
    def sent(self) -> int:
        """Requests sent (answered or not)."""
        return self._sent

    @property
    def failed(self) -> int:
        """Requests that got no HTTP answer (refused, reset, timed out). A 500 is an answer."""
        return self._failed

    @property
    def by_version(self) -> dict[str, int]:
        """Answers per X-Version header ("unknown" when the header is missing)."""
        with self._lock:
            return dict(self._by_version)

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- control

    def start(self) -> TrafficGenerator:
        if self._threads:
            raise RuntimeError("the traffic generator is already started")
        now = time.monotonic()
        self._next_at = now
        self._deadline = now + self.max_seconds
        self._threads = [
            threading.Thread(target=self._work, name=f"demo-traffic-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop now: requests in flight are abandoned (their sockets shut), workers joined."""
        self._stop.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the generator stops (by itself at max_seconds / max_requests, or stopped);
        True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    # -- workers

    def _claim(self) -> tuple[float, str] | None:
        """The next slot of the schedule and the user who sends it, or None when the run is over."""
        with self._lock:
            if self._stop.is_set():
                return None
            if self.max_requests is not None and self._claimed >= self.max_requests:
                return None
            now = time.monotonic()
            if self._next_at < now - MAX_LAG:
                self._next_at = now
            when = self._next_at
            if when > self._deadline:
                return None
            self._next_at += 1.0 / self.rps
            self._claimed += 1
            return when, f"user-{self._rng.randrange(self.users)}"

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        try:
            while (slot := self._claim()) is not None:
                when, user = slot
                delay = when - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                    with self._lock:
                        self._connections.add(conn)
                if not self._send(conn, user):
                    self._forget(conn)
                    conn = None
        finally:
            if conn is not None:
                self._forget(conn)

    def _send(self, conn: http.client.HTTPConnection, user: str) -> bool:
        """One request; False when the connection is no longer usable."""
        with self._lock:
            self._sent += 1
        try:
            conn.request("GET", f"{self.path}?user={quote(user)}")
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            if not self._stop.is_set():  # sockets shut by stop() are not the service's failures
                with self._lock:
                    self._failed += 1
            return False
        with self._lock:
            self._by_version[response.getheader("X-Version") or "unknown"] += 1
            self._by_status[response.status] += 1
        return not response.will_close

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connections.discard(conn)
        conn.close()
