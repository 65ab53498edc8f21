"""Data files that ship inside the package: the default configuration with its plans and flag
definitions (`config`), and the colour themes (`themes`).

The checkout's top-level config/ and themes/ are their only source: opsconsole/_shipped/ holds links
to them, so an editable install reads them in place, and a wheel (`pip install .`, pipx) carries
copies. Found with importlib.resources, not relative to the checkout, so either install works.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped(name: str) -> Path:
    """The shipped `config` or `themes` directory."""
    # Every supported install puts the package on disk as files, so this is a real directory.
    return Path(str(files("opsconsole") / "_shipped" / name))
