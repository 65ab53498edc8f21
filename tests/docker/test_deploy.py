"""`opsconsole deploy` against a real Docker engine (tests/docker/conftest.py): the seed 003 pipeline
with the recreate strategy, its exit codes and its rollback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import APP, DockerEngine, free_port, http_get

REPO = Path(__file__).resolve().parents[2]
SECRET_ENV = "OPSC_TEST_DEPLOY_SECRET"
SECRET = "deploy-Secret-value-7731"

pytestmark = pytest.mark.timeout(120)


HTTP_HEALTH = '{url: "http://127.0.0.1:{port}/health", interval: 200ms, timeout: 500ms, failure_limit: 3}'


def write_config(
    tmp: Path, host: str, port: int, extra: str = "", health: str = HTTP_HEALTH, top: str = ""
) -> Path:
    cfg = tmp / "opsconsole.yaml"
    cfg.write_text(
        f"""\
roles: {{default: operator}}
{top}services:
  web:
    image: {APP}
    ports: [{port}]
    environment: {{GREETING: hello}}
    secrets: {{APP_SECRET: {SECRET_ENV}}}
    labels: {{team: tests}}
    health: {health}
    docker: {{host: "{host}", timeout: 20s}}
    stop_timeout: 2s
{extra}"""
    )
    return cfg


def deploy(
    cfg: Path, ws: Path, image: str, *more: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "deploy",
            "web",
            "--image",
            image,
            "--config",
            str(cfg),
            "--workspace",
            str(ws),
            *more,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(ws.parent),
            "PYTHONPATH": str(REPO),
            SECRET_ENV: SECRET,
            **(env or {}),
        },
    )


def running(engine: DockerEngine) -> list[Any]:
    return [c for c in engine.managed("web") if c.status == "running"]


@pytest.fixture
def setup(docker_clean: DockerEngine, tmp_path: Path) -> tuple[DockerEngine, Path, Path, int]:
    port = free_port()
    return docker_clean, write_config(tmp_path, docker_clean.host, port), tmp_path / "ws", port


def test_deploy_of_a_good_image_exits_0_with_the_new_container_healthy(setup):
    engine, cfg, ws, port = setup
    first = deploy(cfg, ws, "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    p = deploy(cfg, ws, "v2", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert report["outcome"] == "ok" and report["exit_code"] == 0
    assert http_get(f"http://127.0.0.1:{port}/health") == "ok"
    assert http_get(f"http://127.0.0.1:{port}/version") == "v2"
    [c] = running(engine)
    assert c.image.id == engine.images()[f"{APP}:v2"]
    assert c.labels["team"] == "tests" and c.labels["io.opsconsole.service"] == "web"
    # the previous version is kept as the rollback image
    assert engine.images()[f"{APP}:rollback"] == engine.images()[f"{APP}:v1"]
    assert report["rollback_image"] == f"{APP}:rollback"
    assert [s["name"] for s in report["steps"]] == [
        "image",
        "tag-rollback",
        "stop-old",
        "start-new",
        "health",
    ]
    # the secret reached the container by reference, and nowhere else
    assert f"APP_SECRET={SECRET}" in c.attrs["Config"]["Env"]
    assert "GREETING=hello" in c.attrs["Config"]["Env"]
    assert SECRET not in p.stdout + p.stderr + first.stdout + first.stderr
    assert all(SECRET not in f.read_text(errors="replace") for f in (ws / "deploys").iterdir())
    # each deploy is in the audit log, with its outcome and rollback image, and no secret
    audit = subprocess.run(
        [sys.executable, "-m", "opsconsole", "audit", "--config", str(cfg), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(ws.parent)},
    )
    assert audit.stdout.count("deploy.run") == 2 and "service:web" in audit.stdout, (
        audit.stdout + audit.stderr
    )
    assert SECRET not in audit.stdout


def test_a_failing_health_check_exits_4_with_the_previous_container_running_again(setup):
    engine, cfg, ws, port = setup
    assert deploy(cfg, ws, "v1").returncode == 0
    p = deploy(cfg, ws, "broken")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "unhealthy" in p.stderr and f"rolled back to {APP}:rollback" in p.stderr
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    assert engine.images()[f"{APP}:rollback"] == engine.images()[f"{APP}:v1"]
    [c] = running(engine)
    assert c.image.id == engine.images()[f"{APP}:v1"]
    assert not [c for c in engine.managed("web") if c.image.id == engine.images()[f"{APP}:broken"]]


def test_the_docker_socket_missing_is_a_clear_error_exit_3(tmp_path):
    cfg = write_config(tmp_path, f"unix://{tmp_path}/no-such/docker.sock", free_port())
    p = deploy(cfg, tmp_path / "ws", "v1")
    assert p.returncode == 3, p.stdout + p.stderr
    assert f"no engine socket at {tmp_path}/no-such/docker.sock" in p.stderr
    assert "Traceback" not in p.stderr


def test_an_image_that_does_not_exist_exits_3_and_changes_nothing(setup):
    engine, cfg, ws, port = setup
    assert deploy(cfg, ws, "v1").returncode == 0
    [before] = running(engine)
    p = deploy(cfg, ws, "no-such-tag", "--json")
    assert p.returncode == 3, p.stdout + p.stderr
    report = json.loads(p.stdout)
    assert f"image {APP}:no-such-tag does not exist" in report["message"]
    assert "nothing was changed" in report["message"]
    [after] = running(engine)
    assert after.id == before.id
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"


def test_containers_without_the_console_labels_are_never_touched(setup):
    engine, cfg, ws, port = setup
    other = free_port()
    foreign = engine.client.containers.run(
        f"{APP}:v1", detach=True, network_mode="host", environment={"PORT": str(other)}, name="not-ours"
    )
    assert deploy(cfg, ws, "v1").returncode == 0
    assert deploy(cfg, ws, "v2").returncode == 0
    foreign.reload()
    assert foreign.status == "running"
    assert http_get(f"http://127.0.0.1:{other}/version") == "v1"


def test_test_and_build_commands_fail_with_their_exit_codes(docker_clean, tmp_path):
    port = free_port()
    failing_tests = "    test: [{name: unit, command: 'echo 3 failed; exit 1', timeout: 10s}]\n"
    cfg = write_config(tmp_path, docker_clean.host, port, failing_tests)
    p = deploy(cfg, tmp_path / "ws", "v1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "tests failed: unit: exit code 1: 3 failed" in p.stderr
    failing_build = (
        "    test: [{name: unit, command: 'true'}]\n"
        "    build: [{name: image, command: 'exit 7', timeout: 10s}]\n"
    )
    cfg = write_config(tmp_path, docker_clean.host, port, failing_build)
    p = deploy(cfg, tmp_path / "ws", "v1")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "build failed: image: exit code 7" in p.stderr
    assert not docker_clean.managed("web")


def test_a_hanging_smoke_test_times_out_and_rolls_back(setup, tmp_path):
    engine, _, ws, port = setup
    cfg = write_config(
        tmp_path, engine.host, port, "    smoke: {command: '[ -z \"$HANG\" ] || sleep 60', timeout: 1s}\n"
    )
    assert deploy(cfg, ws, "v1").returncode == 0
    p = deploy(cfg, ws, "v2", env={"HANG": "1"})
    assert p.returncode == 4, p.stdout + p.stderr
    assert "smoke test failed: smoke: timed out after 1s" in p.stderr
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"


def test_a_deploy_killed_mid_way_is_rolled_back_by_the_next(setup, tmp_path):
    """The smoke test kills the deploying process (SIGKILL) after the new version started: the
    journal says `started_new`; the next deploy first restores the rollback image, then deploys."""
    engine, _, ws, port = setup
    smoke = "    smoke: {command: '[ -z \"$CRASH\" ] || kill -9 $PPID; sleep 5', timeout: 10s}\n"
    cfg = write_config(tmp_path, engine.host, port, smoke.replace("; sleep 5", ""))
    assert deploy(cfg, ws, "v1").returncode == 0
    crashed = deploy(cfg, ws, "v2", env={"CRASH": "1"})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    assert json.loads((ws / "deploys" / "web.json").read_text())["phase"] == "started_new"
    assert http_get(f"http://127.0.0.1:{port}/version") == "v2"  # half way: not verified
    p = deploy(cfg, ws, "no-such-tag", "--json")  # resumes first; then refuses the image
    report = json.loads(p.stdout)
    assert report["resumed"] and "interrupted at started_new" in report["resumed"], report
    assert "rolled back to" in report["resumed"]
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    assert p.returncode == 3 and "does not exist" in report["message"]
    # the store has every deploy, the interrupted one finished by the resume with its own steps
    rows = stored_deploys(ws)
    assert rows[0]["report_outcome"] == "deploy_failed"
    crashed_row = next(r for r in rows if r.get("image") == f"{APP}:v2")
    assert crashed_row["phase"] == "done" and crashed_row["outcome"] == "rolled_back"
    assert [s["name"] for s in crashed_row["steps"]][:2] == ["image", "tag-rollback"]


def stored_deploys(ws: Path) -> list[dict[str, Any]]:
    """The deploys the workspace's store holds, newest first, read as another console would."""
    from opsconsole.engine.store import open_store

    store = open_store(f"sqlite:///{ws}/state.db")
    try:
        with store.read() as tx:
            return tx.list_deploys("web")
    finally:
        store.close()


def test_the_store_shows_a_deploy_as_it_goes_and_resumes_one_whose_journal_file_is_gone(setup, tmp_path):
    """Another console sees an interrupted deploy in the store; with the workspace's journal file
    lost, the next deploy resumes from the store's record."""
    engine, _, ws, port = setup
    smoke = "    smoke: {command: '[ -z \"$CRASH\" ] || kill -9 $PPID', timeout: 10s}\n"
    cfg = write_config(tmp_path, engine.host, port, smoke)
    first = deploy(cfg, ws, "v1", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    [done] = stored_deploys(ws)
    assert done["phase"] == "done" and done["outcome_code"] == 0 and done["image"] == f"{APP}:v1"
    assert [s["name"] for s in done["steps"]] == ["image", "stop-old", "start-new", "health", "smoke"]
    assert all(s["at"] >= done["started_at"] for s in done["steps"])
    assert SECRET not in json.dumps(done)
    assert deploy(cfg, ws, "v2", env={"CRASH": "1"}).returncode == -9
    crashed = stored_deploys(ws)[0]
    assert crashed["phase"] == "started_new" and crashed["rollback_image"] == f"{APP}:rollback"
    assert "finished_at" not in crashed  # still going, as far as anyone can tell
    (ws / "deploys" / "web.json").unlink()
    p = deploy(cfg, ws, "v1", "--json")
    report = json.loads(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert report["resumed"] and "interrupted at started_new" in report["resumed"], report
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    assert [r["phase"] for r in stored_deploys(ws)] == ["done", "done", "done"]


def test_the_images_own_healthcheck_decides_with_health_docker(docker_clean, tmp_path):
    port = free_port()
    cfg = write_config(
        tmp_path, docker_clean.host, port, health="{docker: true, interval: 200ms, max_wait: 20s}"
    )
    ws = tmp_path / "ws"
    p = deploy(cfg, ws, "hc-good")
    assert p.returncode == 0, p.stdout + p.stderr
    [c] = running(docker_clean)
    assert c.attrs["State"]["Health"]["Status"] == "healthy"
    p = deploy(cfg, ws, "hc-bad")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "unhealthy (the image's HEALTHCHECK)" in p.stderr
    assert http_get(f"http://127.0.0.1:{port}/version") == "hc-good"
    # an image without a HEALTHCHECK cannot be judged by one: said, and rolled back
    p = deploy(cfg, ws, "v1")
    assert p.returncode == 4 and "its image has no HEALTHCHECK" in p.stderr, p.stderr


def test_the_backup_is_taken_and_verified_before_anything_stops(docker_clean, tmp_path):
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.txt").write_text("42 orders")
    top = f"backups:\n  appdata: {{kind: files, paths: [{data}], flags: false, configuration: false}}\n"
    cfg = write_config(tmp_path, docker_clean.host, port, "    backup: appdata\n", top=top)
    ws = tmp_path / "ws"
    p = deploy(cfg, ws, "v1", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    [step] = [s for s in json.loads(p.stdout)["steps"] if s["name"] == "backup"]
    assert step["ok"] and step["detail"].endswith("verified")
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "backup",
            "list",
            "--config",
            str(cfg),
            "--workspace",
            str(ws),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert "before deploying opsc-test/app:v1 to web" in listed.stdout, listed.stdout + listed.stderr
    # a backup that fails (its path is gone) stops the deploy before anything is touched
    cfg = write_config(
        tmp_path,
        docker_clean.host,
        port,
        "    backup: appdata\n",
        top=top.replace(str(data), str(tmp_path / "missing")),
    )
    [before] = running(docker_clean)
    p = deploy(cfg, ws, "v2")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "backup appdata failed" in p.stderr and "nothing was changed" in p.stderr
    [after] = running(docker_clean)
    assert after.id == before.id


def test_a_port_already_taken_fails_the_first_deploy_with_the_containers_own_words(setup):
    engine, cfg, ws, port = setup
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        p = deploy(cfg, ws, "v1")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "exited (exit code" in p.stderr and "httpd: bind: Address already in use" in p.stderr
    assert "no previous version to roll back to (first deploy)" in p.stderr
    assert not running(engine)


def test_the_kill_switch_stops_a_deploy_at_its_next_safe_point_on_the_last_healthy_version(setup, tmp_path):
    """broken never gets healthy and the limit is high: the deploy would wait ~20 s. The kill switch,
    pulled meanwhile, stops it at the next check: v1 runs again, well before the limit."""
    engine, _, ws, port = setup
    patient = '{url: "http://127.0.0.1:{port}/health", interval: 200ms, timeout: 500ms, failure_limit: 100}'
    cfg = write_config(tmp_path, engine.host, port, health=patient)
    assert deploy(cfg, ws, "v1").returncode == 0
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        SECRET_ENV: SECRET,
    }
    argv = [sys.executable, "-m", "opsconsole", "--config", str(cfg), "--workspace", str(ws)]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, "deploy", "web", "--image", "broken"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while http_get(f"http://127.0.0.1:{port}/version") != "broken":
            assert time.monotonic() < deadline and proc.poll() is None, "broken never started"
            time.sleep(0.05)
        kill = subprocess.run(
            [*argv, "kill", "--reason", "incident 7"], capture_output=True, text=True, env=env, timeout=60
        )
        assert kill.returncode == 0, kill.stdout + kill.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, out + err
    assert "the kill switch is engaged (incident 7" in err and "rolled back to" in err
    assert time.monotonic() - started < 15
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
    # while it is engaged a deploy does not start
    p = deploy(cfg, ws, "v2")
    assert p.returncode == 3 and "stopped before anything changed: the kill switch is engaged" in p.stderr, (
        p.stderr
    )
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"


def test_a_deploy_notifies_completed_and_rollback_through_the_outbox(setup, tmp_path):
    engine, _, ws, port = setup
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        top = f"notifications:\n  - {{kind: webhook, url: {hook}, events: [rollback, completed]}}\n"
        cfg = write_config(tmp_path, engine.host, port, top=top)
        assert deploy(cfg, ws, "v1").returncode == 0
        assert deploy(cfg, ws, "broken").returncode == 4
        assert deploy(cfg, ws, "no-such-tag").returncode == 3  # nothing changed: nothing to say
    finally:
        server.shutdown()
    assert [g["event"] for g in got] == ["completed", "rollback"], got
    assert (
        "deploy of opsc-test/app:broken to web" in got[1]["message"] and "rolled back to" in got[1]["message"]
    )
    assert SECRET not in json.dumps(got)


class DownStore:
    """A store that cannot be reached: every transaction fails."""

    def transaction(self) -> Any:
        from opsconsole.engine.store import StoreError

        raise StoreError("the store is down (test)")

    read = transaction

    def exclusive(self, name: str) -> Any:
        return self.transaction()


def test_a_store_that_cannot_be_written_does_not_stop_a_deploy(setup: Any) -> None:
    """The journal file is the crash record: the deploy goes on and says its progress was not recorded."""
    from opsconsole.engine.config import load_config
    from opsconsole.engine.deploy.pipeline import run_deploy

    engine, cfg, ws, port = setup
    spec = load_config(cfg, {"WORKSPACE": str(ws)}).services["web"]
    os.environ[SECRET_ENV] = SECRET
    try:
        report = run_deploy(spec, "v1", ws, store=DownStore())  # type: ignore[arg-type]
    finally:
        del os.environ[SECRET_ENV]
    assert report.code == 0, report.message
    assert "progress not recorded in the store: the store is down (test)" in report.message
    assert "the team's deploy lock was not taken, only this host's: the store is down" in report.message
    assert json.loads((ws / "deploys" / "web.json").read_text())["phase"] == "done"
    assert http_get(f"http://127.0.0.1:{port}/version") == "v1"
