"""The themes' cache (tui/themes.py load_themes_cached): the same themes and problems as reading
the files, without reading them while nothing changed; any change to a file or the directory reads
them again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsconsole.tui import themes
from opsconsole.tui.themes import load_themes, load_themes_cached, themes_dir


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "themes"
    shutil.copytree(themes_dir(), folder)
    (folder / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    return folder


def test_the_cache_gives_what_the_files_give(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, cache = _copy(tmp_path), tmp_path / "cache.json"
    want_problems: list[str] = []
    want = load_themes(folder, want_problems)
    assert want_problems  # the broken file is reported, from the cache too
    first: list[str] = []
    assert load_themes_cached(folder, first, cache) == want and first == want_problems
    assert cache.exists()

    def no_reading(*args: object) -> None:
        raise AssertionError("read the theme files although the cache is current")

    with monkeypatch.context() as m:
        m.setattr(themes, "load_themes", no_reading)
        again: list[str] = []
        assert load_themes_cached(folder, again, cache) == want and again == want_problems

    (folder / "broken.yaml").unlink()  # a change: read again, and the problem is gone
    fixed: list[str] = []
    assert load_themes_cached(folder, fixed, cache) == want and fixed == []


def test_a_damaged_or_unwritable_cache(tmp_path: Path) -> None:
    folder, cache = _copy(tmp_path), tmp_path / "cache.json"
    cache.write_text("{not json")
    got: list[str] = []
    assert load_themes_cached(folder, got, cache) == load_themes(folder)
    nowhere = tmp_path / "missing-dir" / "cache.json"
    assert load_themes_cached(folder, [], nowhere) == load_themes(folder)
