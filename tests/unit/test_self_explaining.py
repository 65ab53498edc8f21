"""The project explains itself: no text or docstring in the package sends a user to a design document
they do not have (README and the module docstrings are the user's documents)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "opsconsole"
CITATION = re.compile(r"\bDESIGN\b|design doc")


def test_no_source_file_cites_the_design_document():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*"))
        if path.suffix in (".py", ".tcss", ".yaml") and path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CITATION.search(line)
    ]
    assert found == []
