"""A workspace with real files to back up, a config naming them, and engines for several roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsconsole.engine import Actor, Engine, open_engine

CONFIG = """\
store: sqlite:///{ws}/state.db
roles:
  default: operator
  users:
    alice: approver
    vic: viewer
backups:
  site:
    kind: files
    paths: [{data}]
    state: true
    keep_last: 2
  small:
    kind: files
    paths: [{data}]
    configuration: false
    flags: false
    storage: {{directory: {small}}}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    return data


@pytest.fixture
def make_engine(tmp_path: Path, site: Path) -> Iterator[Callable[..., Engine]]:
    ws = tmp_path / "ws"
    cfg = tmp_path / "opsconsole.yaml"
    engines: list[Engine] = []

    def make(user: str = "oscar", small: Path | None = None) -> Engine:
        cfg.write_text(CONFIG.format(ws=ws, data=site, small=small or tmp_path / "small-store"))
        engine = open_engine(str(cfg), ws, actor=Actor(user, "test"))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()
