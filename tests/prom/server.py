"""A real Prometheus for the tests, one per session on a free 127.0.0.1 port, scraping a tiny exporter
this fixture serves (every second), its storage in the session's temp dir. It also scrapes whatever
targets a test names (`Prom.scrape`: a file_sd file it rereads every second), so the Docker tests can
measure each colour of a blue-green deploy on its own port.

Registered once, in the root conftest.py (pytest_plugins), so tests/prom and tests/docker share one
server. Also here: an auth proxy in front of it (a bearer token or basic auth, else 401, as a reverse
proxy in front of a real Prometheus does). Where the `prometheus` binary is missing the tests skip
with the reason, except in CI, where that is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "prom-test-Token-5521"
"""The proxy's bearer token; tests check that no message ever carries it."""
BASIC = "watcher:prom-basic-Secret-8812"
TOKEN_ENV = "OPSCONSOLE_TEST_PROM_TOKEN"
BASIC_ENV = "OPSCONSOLE_TEST_PROM_BASIC"
START_WAIT = 30.0
"""Bound on waiting for Prometheus to be ready and to have scraped the exporter."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exporter:
    """The /metrics page Prometheus scrapes: a gauge and a counter per code, set by the tests."""

    temperature: float = 42.5
    requests: dict[str, float] = field(default_factory=lambda: {"200": 0.0, "500": 0.0})
    port: int = 0
    failures: float = 0.0
    """demo_failures_total: a counter of its own, so a test that makes it grow changes no other answer."""

    def text(self) -> str:
        lines = ["# TYPE demo_temperature gauge", f"demo_temperature {self.temperature}"]
        lines.append("# TYPE demo_requests_total counter")
        lines += [f'demo_requests_total{{code="{c}"}} {v}' for c, v in self.requests.items()]
        lines += ["# TYPE demo_failures_total counter", f"demo_failures_total {self.failures}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Prom:
    url: str
    exporter: Exporter
    proxy_url: str
    """Prometheus behind a proxy that wants `Authorization: Bearer TOKEN` or basic auth BASIC."""
    targets: Path
    """The directory of file_sd files Prometheus rereads every second (job `targets`)."""

    def scrape(self, name: str, targets: Mapping[str, Mapping[str, str]]) -> Path:
        """Scrape each `host:port` of `targets` (with its labels) at /metrics every second, from
        Prometheus's next file_sd read on; the file's path (unlink it to stop)."""
        groups = [{"targets": [address], "labels": dict(labels)} for address, labels in targets.items()]
        path = self.targets / f"{name}.json"
        temp = path.with_suffix(".tmp")  # not matched by *.json: Prometheus never reads half a file
        temp.write_text(json.dumps(groups))
        temp.replace(path)
        return path


def _serve(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _exporter_server(exporter: Exporter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exporter.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return _serve(Handler)


def _proxy_server(upstream: str, port: int = 0, auth: bool = True) -> ThreadingHTTPServer:
    wanted = {f"Bearer {TOKEN}", "Basic " + base64.b64encode(BASIC.encode()).decode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if auth and self.headers.get("Authorization") not in wanted:
                body = b"Unauthorized\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="prometheus"')
            else:
                try:
                    with urllib.request.urlopen(upstream + self.path, timeout=5) as resp:
                        status, body = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, body = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return _serve(Handler, port)


def forwarder(upstream: str, port: int = 0) -> ThreadingHTTPServer:
    """Prometheus's API on another port, without auth: a server a test can stop and start again
    (on the same port) while Prometheus itself keeps running for the other tests."""
    return _proxy_server(upstream, port, auth=False)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def _wait_scraped(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the exporter has been scraped three times (the first sample takes a scrape or two; a
    rate needs two), bounded."""
    query = urllib.parse.urlencode({"query": 'count_over_time(up{job="exporter"}[1m]) >= 3'})
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        body = _get(f"{url}/api/v1/query?{query}")
        if body is not None and b'"value"' in body:
            return
        time.sleep(0.2)
    raise RuntimeError(f"prometheus at {url} did not scrape the exporter within {START_WAIT:g}s")


def prometheus_binary() -> str:
    """The Debian prometheus; a skip with the reason where it is missing, except in CI (a failure)."""
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "prometheus is missing (make system-deps installs the Debian package)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a real Prometheus: {reason}", pytrace=False)
        pytest.skip(reason)
    return binary


@contextlib.contextmanager
def running_prometheus(work: Path, config: str) -> Iterator[str]:
    """A Prometheus on a free 127.0.0.1 port with `config` (scraping every second, its storage under
    `work`), once it has scraped the `exporter` job three times; its URL. Stopped afterwards."""
    binary = prometheus_binary()
    (work / "prometheus.yml").write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n" + config)
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_scraped(url, proc)
        except RuntimeError as exc:
            pytest.fail(f"{exc}; log: {(work / 'prometheus.log').read_text()[-2000:]}", pytrace=False)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    prometheus_binary()
    exporter = Exporter()
    exp_server = _exporter_server(exporter)
    exporter.port = int(exp_server.server_address[1])
    work: Path = tmp_path_factory.mktemp("prometheus")
    targets = work / "targets"
    targets.mkdir()
    config = (
        "scrape_configs:\n"
        "  - job_name: exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
        "  - job_name: targets\n"
        "    scrape_timeout: 900ms\n"
        f"    file_sd_configs: [{{files: ['{targets}/*.json'], refresh_interval: 1s}}]\n"
    )
    try:
        with running_prometheus(work, config) as url:
            proxy = _proxy_server(url)
            try:
                yield Prom(
                    url=url,
                    exporter=exporter,
                    proxy_url=f"http://127.0.0.1:{proxy.server_address[1]}",
                    targets=targets,
                )
            finally:
                proxy.shutdown()
    finally:
        exp_server.shutdown()
