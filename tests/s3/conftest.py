"""A real S3 for the tests: the session's one moto server (tests/moto_server.py, shared with
tests/cloudwatch), asked for only by tests that use `s3_server`. Where moto is missing the tests skip
with the reason, except in CI (`CI=true`), where that is a failure.

`CutProxy` sits between a backup and the server to break an upload half way: it forwards bytes until
its budget is spent, then closes the connection and every later one — an endpoint that dies mid-upload.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Actor, Engine, open_engine

from .. import moto_server
from ..moto_server import ACCESS_KEY, SECRET_KEY, free_port

__all__ = ["ACCESS_KEY", "SECRET_KEY", "CutProxy", "client", "free_port", "keys"]


@pytest.fixture(scope="session")
def s3_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The endpoint URL of the session's one moto server (shared with tests/cloudwatch)."""
    return moto_server.endpoint(pytestconfig, tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from boto3's usual chain (the environment here)."""
    moto_server.aws_environment(monkeypatch, tmp_path)


def client(endpoint: str) -> Any:
    """A plain boto3 client for the test's own look at the bucket."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_server: str) -> str:
    name = f"ops-{secrets.token_hex(4)}"
    client(s3_server).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str) -> list[str]:
    listed = client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(str(o["Key"]) for o in listed.get("Contents", []))


CONFIG = """\
store: sqlite:///{ws}/state.db
roles:
  default: operator
  users:
    alice: approver
backups:
  site:
    kind: files
    paths: [{data}]
    flags: false
    keep_last: 2
    storage:
      s3: {{bucket: {bucket}, prefix: nightly/site, endpoint: '{endpoint}', region: us-east-1}}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Files to back up: small text and 1 MiB of random bytes (an archive that does not compress, so
    an upload takes many packets)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    (data / "noise.bin").write_bytes(os.urandom(1 << 20))
    return data


@pytest.fixture
def make_engine(tmp_path: Path, site: Path, bucket: str, s3_server: str) -> Iterator[Callable[..., Engine]]:
    """Engines on one workspace; `endpoint` replaces the configured one (a proxy, a closed port)."""
    ws = tmp_path / "ws"
    cfg = tmp_path / "opsconsole.yaml"
    engines: list[Engine] = []

    def make(user: str = "oscar", endpoint: str | None = None) -> Engine:
        cfg.write_text(CONFIG.format(ws=ws, data=site, bucket=bucket, endpoint=endpoint or s3_server))
        engine = open_engine(str(cfg), ws, actor=Actor(user, "test"))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


class CutProxy:
    """A TCP proxy on 127.0.0.1 to `port` that forwards `budget` client bytes in all, then cuts."""

    def __init__(self, port: int, budget: int) -> None:
        self.port = port
        self.budget = budget
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            for src, dst, counted in ((conn, upstream, True), (upstream, conn, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, counted, conn, upstream), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool, *both: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self._lock:
                        allowed = max(0, min(len(data), self.budget))
                        self.budget -= allowed
                    if allowed < len(data):
                        dst.sendall(data[:allowed])
                        self.cut.set()
                        break
                dst.sendall(data)
                if self.cut.is_set():
                    break
        except OSError:
            pass
        for s in both:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.listener.close()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)


@pytest.fixture
def cut_proxy(s3_server: str) -> Iterator[Callable[[int], CutProxy]]:
    proxies: list[CutProxy] = []

    def make(budget: int) -> CutProxy:
        proxy = CutProxy(int(s3_server.rsplit(":", 1)[1]), budget)
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.close()
