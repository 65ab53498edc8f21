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
