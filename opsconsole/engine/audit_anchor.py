"""The audit anchor file: the chain's head, appended outside the database after every commit that
added audit events, so `audit --verify` can tell that events were cut off the end.

One short line per commit ("seq hash time"), written with O_APPEND (so processes appending at once
never overwrite each other's lines) and fsynced. The file lives in the workspace next to the
database, so it raises the bar rather than proving anything against someone who can rewrite both;
make it append-only for the console's users (`chattr +a`) to keep it out of their reach. Writing it
never fails a command: the transaction is committed already, and the next anchor covers this one.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .audit import Anchor
from .units import iso_utc

FILE = "audit-anchor.log"
TAIL_BYTES = 64 * 1024
"""How much of the file's end is read back: the newest anchors, those of concurrent commits too."""
_LINE = re.compile(r"(\d+) ([0-9a-f]{64}) (\S+)")


def path(workspace: Path) -> Path:
    return workspace / FILE


def append(workspace: Path, seq: int, digest: str, at: float) -> None:
    """Anchor the head `seq` / `digest` (its event's time `at`)."""
    when = iso_utc(at)
    line = f"{seq} {digest} {when}\n".encode()
    target = path(workspace)
    with contextlib.suppress(OSError, ValueError, OverflowError):
        created = not target.exists()
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new name must survive a crash too
            dfd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def read(workspace: Path) -> list[Anchor]:
    """The anchors at the end of the file; [] when there is none. A torn last line (a crash while
    appending) and lines that are not anchors are skipped."""
    try:
        with open(path(workspace), "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read(TAIL_BYTES)
    except FileNotFoundError:
        return []
    lines = tail.split(b"\n")[:-1]  # the last piece has no newline: torn or empty
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first piece may start mid-line
    out = []
    for raw in lines:
        m = _LINE.fullmatch(raw.decode("ascii", "replace"))
        if m:
            out.append(Anchor(int(m.group(1)), m.group(2), m.group(3)))
    return out


def tap(
    rows: Iterable[tuple[Any, ...]], wanted: set[int], hashes: dict[int, str]
) -> Iterator[tuple[Any, ...]]:
    """Pass stored audit rows through, noting the hash of each seq in `wanted` on the way."""
    for row in rows:
        if row[0] in wanted:
            hashes[int(row[0])] = str(row[8])
        yield row
