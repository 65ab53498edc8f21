"""nginx (Debian) on a loopback port as the blue-green traffic switch: it proxies to the upstream in
`upstream.conf`; `switch_command` rewrites that file from OPSCONSOLE_UPSTREAMS and reloads nginx."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .dockerd import Missing, free_port, http_get


@dataclass
class Nginx:
    root: Path
    port: int
    conf: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def switch_command(self) -> str:
        up = self.root / "upstream.conf"
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return (
            f"{{ echo 'upstream app {{'; for u in $OPSCONSOLE_UPSTREAMS; do echo \"  server $u;\"; done; echo '}}'; }}"
            f" > {up}.new && mv {up}.new {up} && {nginx} -q -s reload -c {self.conf} -p {self.root} -e {self.root}/error.log"
        )


@contextlib.contextmanager
def running_nginx(root: Path, first_upstream: int) -> Iterator[Nginx]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        raise Missing("nginx not installed (Debian nginx)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (root / "upstream.conf").write_text(f"upstream app {{ server 127.0.0.1:{first_upstream}; }}\n")
    conf = root / "nginx.conf"
    temp = " ".join(
        f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"""\
daemon on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  {temp}
  include {root}/upstream.conf;
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_connect_timeout 1s; proxy_read_timeout 2s; }}
  }}
}}
"""
    )
    subprocess.run(
        [nginx, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")], check=True, timeout=10
    )
    try:
        deadline = time.monotonic() + 10
        while not (root / "nginx.pid").exists():
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield Nginx(root, port, conf)
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int((root / "nginx.pid").read_text().strip())
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)


__all__ = ["Nginx", "http_get", "running_nginx"]
