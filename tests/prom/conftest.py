"""The Prometheus tests' helpers. The session's Prometheus itself (`prom`) is started by
tests/prom/server.py, a plugin registered in the root conftest.py so that every directory using it
shares one server; its names are re-exported here for the tests of this directory."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .server import BASIC, BASIC_ENV, TOKEN, TOKEN_ENV, Exporter, Prom, forwarder, free_port

__all__ = ["BASIC", "BASIC_ENV", "TOKEN", "TOKEN_ENV", "Exporter", "Prom", "forwarder", "free_port"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture
def dead_port() -> int:
    """A port nothing listens on: a stopped server."""
    return free_port()
