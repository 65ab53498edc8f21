"""A throwaway Docker engine, for the tests (conftest.py) and bench/deploy_rollback.py: one dockerd on
its own socket, data root and exec root in a temp dir, with every networking feature off (no bridge,
no iptables, no forwarding, no masquerading); images made offline: busybox-static installed into a
root filesystem and `docker import`ed with a different ENV per tag. Containers use host networking;
busybox httpd serves /health and /version on the port in $PORT.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_WAIT = 30.0
APP = "opsc-test/app"
"""The test service's image repository; tags: v1, v2 (healthy), broken (no /health: 404),
hc-good and hc-bad (the same with a HEALTHCHECK of their own), v2-errors (v2, healthy, but its
/metrics says app_errors 9)."""
SERVE = (
    'mkdir -p /srv && echo "$APP_VERSION" > /srv/version && '
    'if [ "$APP_HEALTHY" = 1 ]; then echo ok > /srv/health; fi && '
    'printf "# TYPE app_errors gauge\\napp_errors %s\\n" "${APP_ERRORS:-0}" > /srv/metrics && '
    'httpd -f -p "127.0.0.1:${PORT:-8080}" -h /srv & pid=$!; '
    "trap 'kill $pid; exit 0' TERM; wait $pid"
)
"""PID 1 is the shell, which traps SIGTERM: `docker stop` ends it at once, not after its timeout.
/metrics is a static Prometheus text page, `app_errors` set by the image's APP_ERRORS (a test may
rewrite /srv/metrics in a running container with `docker exec`)."""
HEALTHCHECK = (
    "HEALTHCHECK --interval=1s --timeout=1s --retries=2 "
    'CMD wget -q -O /dev/null "http://127.0.0.1:${PORT:-8080}/health" || exit 1'
)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Missing(Exception):
    """A program the engine needs is not installed (the message says which package)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 1.0) -> str | None:
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


@dataclass
class DockerEngine:
    root: Path
    host: str
    client: Any
    proc: subprocess.Popen[bytes]

    def images(self) -> dict[str, str]:
        return {t: img.id for img in self.client.images.list() for t in img.tags}

    def managed(self, service: str) -> list[Any]:
        """The service's containers; one removed while they are listed (a deploy or a settle in its
        thread) is left out, not an error."""
        return list(
            self.client.containers.list(
                all=True,
                filters={"label": ["io.opsconsole.managed=true", f"io.opsconsole.service={service}"]},
                ignore_removed=True,
            )
        )


def _rootfs_tar(root: Path, busybox: str) -> Path:
    fs = root / "rootfs"
    (fs / "bin").mkdir(parents=True)
    (fs / "tmp").mkdir()
    shutil.copy2(busybox, fs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (fs / "bin" / applet).exists():
            (fs / "bin" / applet).symlink_to("busybox")
    tar = root / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(fs, arcname=".")
    return tar


def _unmount_under(root: Path) -> None:
    """dockerd leaves its netns mount (nsfs) in the exec root: unmount what is under `root`, deepest first."""
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@contextlib.contextmanager
def running_dockerd() -> Iterator[DockerEngine]:
    """Start dockerd, import the images, yield; then remove every container, stop dockerd (SIGTERM,
    then SIGKILL of its process group) and remove the temp dir. Raises Missing, or RuntimeError when
    dockerd does not come up."""
    dockerd = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None
    )
    busybox = next((p for p in ("/usr/bin/busybox", "/bin/busybox") if os.path.exists(p)), None)
    if dockerd is None:
        raise Missing("dockerd not installed (Debian docker.io)")
    if busybox is None:
        raise Missing("busybox not installed (Debian busybox-static)")
    try:
        import docker
    except ImportError as exc:
        raise Missing("the docker SDK is not installed (pip install 'opsconsole[docker]')") from exc
    # Short: the socket paths under it must fit in a sockaddr_un (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="opsc-dk-", dir="/tmp"))
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [
            dockerd,
            f"--host=unix://{sock}",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'x'}",
            f"--pidfile={root / 'dockerd.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--shutdown-timeout=2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = None
    try:
        deadline = time.monotonic() + START_WAIT
        while True:
            if proc.poll() is not None:
                tail = (root / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"dockerd exited with {proc.returncode}: {tail}")
            if sock.exists():
                with contextlib.suppress(Exception):  # not ready yet
                    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=30)
                    client.ping()
                    break
            if time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"dockerd not ready within {START_WAIT:g}s: {tail}")
            time.sleep(0.1)
        tar = _rootfs_tar(root, busybox)
        cmd = "CMD " + json.dumps(["/bin/sh", "-c", SERVE])
        for tag, version, healthy, own_check, errors in (
            ("v1", "v1", 1, False, 0),
            ("v2", "v2", 1, False, 0),
            ("broken", "broken", 0, False, 0),
            ("hc-good", "hc-good", 1, True, 0),
            ("hc-bad", "hc-bad", 0, True, 0),
            ("v2-errors", "v2", 1, False, 9),
        ):
            changes = [
                f"ENV APP_VERSION={version}",
                f"ENV APP_HEALTHY={healthy}",
                f"ENV APP_ERRORS={errors}",
                cmd,
            ]
            client.api.import_image_from_file(
                str(tar), repository=APP, tag=tag, changes=[*changes, *([HEALTHCHECK] if own_check else [])]
            )
        yield DockerEngine(root, f"unix://{sock}", client, proc)
    finally:
        if client is not None:
            for c in client.containers.list(all=True):
                with contextlib.suppress(Exception):  # best effort before the daemon stops
                    c.remove(force=True)
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def workspace_config(tmp: Path, docker: DockerEngine, port: int, flags: str, service_extra: str = "") -> str:
    """The configuration the Docker tests' workspaces share: one environment on flag files, the plan
    in `tmp`, and the service `web` (APP on `port`, health every 200 ms) on `docker`; `service_extra`
    is one more line of the service (its colours' ports, say)."""
    return textwrap.dedent(
        f"""\
        interval: 1s
        roles: {{default: operator}}
        environments:
          production: {{flags: {{kind: file, path: "${{WORKSPACE}}/flags/production.json"}}}}
        plans: ["{tmp}/plan.yaml"]
        flags: "{flags}"
        kill_switch: {{flags_on: [emergency_shutdown]}}
        services:
          web:
            image: {APP}
            ports: [{port}]
            health: {{url: "http://127.0.0.1:{{port}}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}}
            docker: {{host: "{docker.host}"}}
            stop_timeout: 2s
        """
    ) + (f"    {service_extra}\n" if service_extra else "")
