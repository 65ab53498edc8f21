"""A real Docker engine for the tests: ONE dockerd per session (dockerd.py: its own socket, data and
exec root in a temp dir, networking features off, images made offline with `docker import`), stopped
at the end of the session.

Where dockerd, busybox or the docker SDK is missing the tests skip with the reason, except in CI
(CI=true), where it is a failure. `make system-deps` installs docker.io and busybox-static.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from .dockerd import APP, DockerEngine, Missing, free_port, http_get, running_dockerd

__all__ = ["APP", "DockerEngine", "free_port", "http_get"]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    with contextlib.ExitStack() as stack:
        try:
            engine = stack.enter_context(running_dockerd())
        except Missing as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{exc} (CI=true: the Docker tests must run; `make system-deps` installs it)")
            pytest.skip(str(exc))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield engine


@pytest.fixture
def docker_clean(docker_engine: DockerEngine) -> Iterator[DockerEngine]:
    """The engine with no container (and no `:rollback` tag) left over from an earlier test, before and after."""

    def clean() -> None:
        for c in docker_engine.client.containers.list(all=True):
            c.remove(force=True)
        with contextlib.suppress(Exception):  # not there
            docker_engine.client.images.remove(f"{APP}:rollback")

    clean()
    yield docker_engine
    clean()
