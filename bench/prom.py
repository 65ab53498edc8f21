"""A real Prometheus for the benchmarks: started on a free 127.0.0.1 port with a 1 s scrape of the
given targets, its storage in a temporary directory, stopped when done. `prometheus` must be on PATH
(make system-deps installs the Debian package); a missing binary is an error, not a skip."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import free_port

START_WAIT_S = 30.0


@dataclass(frozen=True)
class PromProcess:
    url: str
    pid: int


def _scraped(url: str, job: str) -> bool:
    query = urllib.parse.urlencode({"query": f'count_over_time(up{{job="{job}"}}[1m]) >= 3'})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=2) as resp:
            doc = json.loads(resp.read())
    except OSError:
        return False
    return bool(doc.get("data", {}).get("result"))


@contextlib.contextmanager
def prometheus(
    root: Path, targets: Sequence[str], *, rules: str = "", alertmanager: str = ""
) -> Iterator[PromProcess]:
    """Prometheus scraping `targets` ("127.0.0.1:PORT", path /metrics) every second, ready once it
    has scraped them three times (a rate needs two samples)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is missing: make system-deps installs the Debian package")
    work = root / "prometheus"
    work.mkdir(parents=True, exist_ok=True)
    config = "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
    if rules:
        (work / "rules.yml").write_text(rules)
        config += f"rule_files: ['{work / 'rules.yml'}']\n"
    if alertmanager:
        config += f"alerting:\n  alertmanagers:\n    - {{api_version: v2, static_configs: [{{targets: ['{alertmanager}']}}]}}\n"
    listed = ", ".join(f"'{t}'" for t in targets)
    config += f"scrape_configs:\n  - job_name: bench\n    static_configs: [{{targets: [{listed}]}}]\n"
    (work / "prometheus.yml").write_text(config)
    port = free_port()
    log = (work / "log").open("wb")
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
        deadline = time.monotonic() + START_WAIT_S
        while not _scraped(url, "bench"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (work / "log").read_text()[-1500:]
                raise RuntimeError(f"prometheus did not scrape {listed} within {START_WAIT_S:g}s: {tail}")
            time.sleep(0.2)
        yield PromProcess(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


AM_BINARIES = ("prometheus-alertmanager", "alertmanager")
AM_CONFIG = 'route: {receiver: "null", group_wait: 1s}\nreceivers: [{name: "null"}]\n'


@contextlib.contextmanager
def alertmanager(root: Path) -> Iterator[PromProcess]:
    """A real Alertmanager on a free 127.0.0.1 port (no gossip port, storage under `root`), notifying
    nobody; ready once /-/ready answers."""
    binary = next((found for name in AM_BINARIES if (found := shutil.which(name))), None)
    if binary is None:
        raise RuntimeError("alertmanager is missing: make system-deps installs prometheus-alertmanager")
    work = root / "alertmanager"
    work.mkdir(parents=True, exist_ok=True)
    (work / "alertmanager.yml").write_text(AM_CONFIG)
    port = free_port()
    log = (work / "log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_WAIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager not ready: {(work / 'log').read_text()[-1500:]}")
            time.sleep(0.1)
        yield PromProcess(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def post_alerts(url: str, alerts: list[dict[str, object]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        if resp.status != 200:
            raise RuntimeError(f"alertmanager refused the alerts: HTTP {resp.status}")


EXPORTER_SCRIPT = """
import math, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = int(sys.argv[1])
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        t = time.time()
        body = "".join(
            f"# TYPE bench_series_{i} gauge\\nbench_series_{i} {50 + 40 * math.sin(t / 7 + i):.3f}\\n"
            for i in range(count)
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
import threading
threading.Thread(target=s.serve_forever, daemon=True).start()
sys.stdin.read()
"""


@contextlib.contextmanager
def series_exporter(count: int) -> Iterator[PromProcess]:
    """`count` gauges bench_series_0.. whose values move every second, on a loopback /metrics page
    served by a process of its own (its CPU is not the console's)."""
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", EXPORTER_SCRIPT, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"exporter did not report its port (got {line!r})")
        yield PromProcess(f"http://127.0.0.1:{line}", proc.pid)
    finally:
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
