"""The kill command's cached slice of the configuration: used while every file it came from is
unchanged, ignored (the configuration is loaded) as soon as one changed or the cache is damaged."""

from __future__ import annotations

import json
import time

from opsconsole.engine import killplan, killswitch
from opsconsole.engine.model import Actor

from .conftest import engine_as, load_ws, write_workspace


def test_the_cache_gives_the_kill_switch_what_the_configuration_gives(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    config = load_ws(ws)
    engine_as(ws, "bob").close()  # an engine that opens the workspace leaves the cache
    cached = killplan.load(ws / "opsconsole.yaml", ws)
    assert cached is not None
    small, every = cached
    assert every == killswitch.canary_flags(config, None)
    assert small.kill_switch == config.kill_switch and small.users == config.users
    assert {n: e.flags for n, e in small.environments.items()} == {
        n: e.flags for n, e in config.environments.items()
    }
    for name in small.flags:
        assert small.flags[name].type == config.flags[name].type
        assert small.flags[name].depends_on == config.flags[name].depends_on
    # the files the kill switch writes from either are the same bytes
    at = time.time()
    actor = Actor("bob", "test")
    killswitch.make_safe(small, ws, actor, "from the cache", at, every)
    from_cache = {p.name: p.read_bytes() for p in (ws / "flags").iterdir()}
    killswitch.make_safe(config, ws, actor, "from the configuration", at)
    assert from_cache == {p.name: p.read_bytes() for p in (ws / "flags").iterdir()}


def test_a_changed_or_damaged_source_is_never_used(tmp_path, service):
    ws = write_workspace(tmp_path, service.port)
    engine_as(ws, "bob").close()
    main = ws / "opsconsole.yaml"
    assert killplan.load(main, ws) is not None
    plan = tmp_path / "plans" / "plan.yaml"
    plan.write_text(plan.read_text() + "\n")  # a plan file changed
    assert killplan.load(main, ws) is None
    engine_as(ws, "bob").close()
    assert killplan.load(main, ws) is not None
    (tmp_path / "plans" / "another.yaml").write_text("name: x\nphases: []\n")  # a plan file added
    assert killplan.load(main, ws) is None
    (ws / killplan.KILL_PLAN).write_text("{not json")
    assert killplan.load(main, ws) is None
    body = {"version": killplan.VERSION, "config": str(main), "stamp": [], "oops": 1}
    (ws / killplan.KILL_PLAN).write_text(json.dumps(body))
    assert killplan.load(main, ws) is None
    assert killplan.load(tmp_path / "other.yaml", ws) is None


def test_a_configuration_edited_after_it_was_read_is_not_cached(tmp_path, service):
    """An engine holding a configuration older than the file must not vouch for the new file."""
    ws = write_workspace(tmp_path, service.port)
    config = load_ws(ws)
    main = ws / "opsconsole.yaml"
    time.sleep(0.01)
    main.write_text(main.read_text().replace("carol: viewer", "carol: admin"))
    from opsconsole.engine.core import Engine

    Engine(config, ws, Actor("bob", "test")).close()
    assert killplan.load(main, ws) is None
