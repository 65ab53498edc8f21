"""The Rollouts pane's Docker part against the real dockerd: each service's containers (image, state,
health, restarts, age) read in a thread and updated in place (nothing repainted when nothing
changed), Docker down or not answering said in the section while the console stays responsive, and
the detail view of a rollout that deployed: the deploy's steps with their times and the rollback image."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.engine import Runner
from opsconsole.engine.model import RolloutState
from opsconsole.tui.panes.rollouts import RolloutsPane
from opsconsole.tui.screens.detail import RolloutDetailScreen
from opsconsole.tui.widgets.fitted_table import FittedTable
from tests.tui.conftest import console, screen_text, until

from .conftest import APP, DockerEngine, free_port
from .test_plan import deploy_v1, make_engine, run_until

S = RolloutState
pytestmark = pytest.mark.timeout(120)


def cells(pane: RolloutsPane) -> dict[str, list[str]]:
    table = pane.query_one("#service-table", FittedTable)
    return {str(k.value): [str(getattr(c, "plain", c)) for c in table.get_row(k)] for k in table.rows}


def test_the_pane_shows_the_services_containers_in_place_and_the_detail_the_deploys_steps(
    docker_clean: DockerEngine, tmp_path: Path
) -> None:
    port = free_port()
    deploy_v1(tmp_path, docker_clean, port)
    engine = make_engine(tmp_path, docker_clean, port, "v2")
    try:
        rid = engine.start_rollout("ship", "test").id
        run_until(Runner(engine), lambda: engine.rollout(rid).state in (S.COMPLETED, S.ROLLED_BACK))
        assert engine.rollout(rid).state is S.COMPLETED, engine.rollout(rid).reason
        [container] = [c for c in docker_clean.managed("web") if c.status == "running"]

        async def run() -> None:
            app = console(engine)
            async with app.run_test(size=(80, 24)) as pilot:
                pane: RolloutsPane = app.panes["rollouts"]
                await until(pilot, lambda: container.name in cells(pane), "the container row")
                row = cells(pane)[container.name]
                assert row[1:] == [f"{APP}:v2", "running", "-", "0", "<1m"], row
                assert "web recreate · last deploy v2 ok" in screen_text(app)
                # nothing changed: the next reads repaint nothing
                table = pane.query_one("#service-table", FittedTable)
                repaints: list[Any] = []
                for widget in (table, pane.query_one("#service-head")):
                    original = widget.refresh
                    widget.refresh = lambda *a, _o=original, **k: (repaints.append(a), _o(*a, **k))[1]  # type: ignore[method-assign]
                reads, before = len(calls), cells(pane)
                await until(pilot, lambda: len(calls) >= reads + 3, "three more reads", seconds=12)
                if cells(pane) == before:  # on a slow machine the age may tick over to 1m meanwhile
                    # A read that repaints would do so three times here. One refresh is allowed: on
                    # a loaded CI machine the first layout's refresh sometimes lands this late.
                    assert len(repaints) <= 1, repaints
                # a change behind the console's back shows in place
                docker_clean.client.containers.get(container.id).stop(timeout=1)
                await until(pilot, lambda: cells(pane)[container.name][2] == "exited", "exited", seconds=8)
                # the detail view: the deploy's steps with times and the rollback image
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, RolloutDetailScreen), "the detail")
                await until(pilot, lambda: "rollback image" in screen_text(app), "the deploy's lines")
                text = screen_text(app)
                assert f"rollback image: {APP}:rollback" in text
                assert f"of {APP}:v2 to web (recreate): ok" in text
                assert " image ok " in text and " health ok " in text

        calls: list[int] = []
        original = RolloutsPane.show_services

        def counted(self: RolloutsPane, statuses: list[Any]) -> None:
            calls.append(1)
            original(self, statuses)

        RolloutsPane.show_services = counted  # type: ignore[method-assign]
        try:
            asyncio.run(run())
        finally:
            RolloutsPane.show_services = original  # type: ignore[method-assign]
    finally:
        engine.close()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts and never answers: a Docker engine that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_docker_down_or_hanging_is_said_in_the_section_and_the_console_stays_responsive(
    tmp_path: Path, silent_listener: int
) -> None:
    """No dockerd needed: a socket path with no engine, then an engine that never answers."""
    gone = type("Gone", (), {"host": f"unix://{tmp_path}/no-such-docker.sock"})()
    engine = make_engine(tmp_path, gone, free_port(), "v2")  # type: ignore[arg-type]
    try:

        async def run() -> None:
            app = console(engine)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: "Docker unreachable" in screen_text(app), "the error")
                assert "no engine socket" in screen_text(app)

        asyncio.run(run())
    finally:
        engine.close()
    (tmp_path / "hang").mkdir()
    hanging = type("Hang", (), {"host": f"tcp://127.0.0.1:{silent_listener}"})()
    engine = make_engine(tmp_path / "hang", hanging, free_port(), "v2")  # type: ignore[arg-type]
    try:

        async def hang() -> None:
            app = console(engine)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: "reading" in screen_text(app), "the first read")
                t = time.monotonic()
                await pilot.press("question_mark")  # the loop answers while Docker does not
                await until(pilot, lambda: app.screen is not app.screen_stack[0], "help", seconds=1)
                assert time.monotonic() - t < 1.0
                await pilot.press("escape")
                await until(pilot, lambda: "did not answer" in screen_text(app), "the timeout", seconds=8)

        asyncio.run(hang())
    finally:
        engine.close()


def test_a_container_is_shown_by_the_image_it_was_started_from_not_a_later_tag(docker_clean, tmp_path):
    """Seen by hand: after a later deploy tagged the live v1's image `:rollback` (its first step),
    the pane said the live container ran "opsc-test/app:rollback"."""
    from opsconsole.engine.deploy.status import service_status

    port = free_port()
    deploy_v1(tmp_path, docker_clean, port)
    [image] = {c.image.id for c in docker_clean.managed("web")}
    images = docker_clean.client.images
    before = docker_clean.images().get(f"{APP}:rollback")
    engine = make_engine(tmp_path, docker_clean, port, "v2")
    try:
        for tag in ("rollback", "zz-later"):  # what a later deploy's tag-rollback step does, in any order
            images.get(image).tag(APP, tag)
        [status] = service_status(engine)
    finally:
        engine.close()
        # The images are the session's: leave their tags as found (the rolling test reads them).
        images.remove(f"{APP}:zz-later", noprune=True)
        if before is not None:
            images.get(before).tag(APP, "rollback")
        else:
            images.remove(f"{APP}:rollback", noprune=True)
    assert [c.image for c in status.containers] == [f"{APP}:v1"]
