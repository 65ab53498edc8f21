"""Colour themes as data files in themes/, loaded at start (replaced by the themes module proper)."""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme


def load_themes(directory: Path | None = None) -> list[Theme]:
    return [Theme(name="opsconsole-dark", primary="#5f87d7", dark=True)]
