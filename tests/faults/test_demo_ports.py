"""The demo's saved configuration pins the ports it really uses, so commands from another shell
(which has no DEMO_PORT) probe the demo's service and not the default 8780."""

from __future__ import annotations

import json

from opsconsole.demo.run import write_demo_config

from .conftest import cli


def test_gates_check_from_another_shell_probes_the_demo_service_port(tmp_path, service):
    ws = tmp_path / "ws"  # the `service` fixture's flag file lives here
    ws.mkdir(exist_ok=True)
    write_demo_config(ws, service.port)
    w = ("--workspace", str(ws))
    started = cli("rollout", "start", "demo", "--reason", "ports", *w)  # no DEMO_PORT in this process
    assert started.returncode == 0, started.stderr
    rid = started.stdout.split()[0]

    p = cli("gates", "check", rid, "--json", *w)
    verdicts = {v["gate"]: v for v in json.loads(p.stdout)}
    health = next(v for v in verdicts.values() if v["kind"] == "health")
    assert health["source"] == f"http://127.0.0.1:{service.port}/health", health
    assert health["status"] == "pass", health

    saved = (ws / "opsconsole.yaml").read_text() + (ws / "plans" / "demo.yaml").read_text()
    assert "DEMO_PORT" not in saved.replace("the DEMO_PORT references", "")
    assert "8780" not in saved.replace("8780 when this file is read", "")
