"""The hash chain that makes the audit log tamper-evident.

Every event's hash covers its own stored values and the previous event's hash, so changing, removing
or reordering any stored event breaks the chain from that point on. Pure: the store hands rows in.

What is hashed is exactly what is stored: the data column's TEXT (not the dict it decodes to, so an
edit that only adds a space is still caught) and `at` as the float the DOUBLE PRECISION column gives
back. JSON writes a float as its shortest round-tripping repr, and both SQLite (REAL) and PostgreSQL
(DOUBLE PRECISION) return the same IEEE double that was written, so the hash is stable across a
read back. The chain proves internal consistency only: someone who deletes the last events, or
rewrites every later event and recomputes the hashes, leaves a consistent chain. That is caught by
anchors, copies of the head (seq, hash) kept outside the database after every commit that appended
events (audit_anchor.py): `check_anchors` fails a chain shorter than, or different from, an anchor.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass, replace
from enum import Enum
from typing import Any

GENESIS = "0" * 64
"""The prev_hash of the first event."""

AuditRow = tuple[int, float, str, str, str, str, str, str, str]
"""(seq, at, actor, origin, action, target, data_text, prev_hash, hash) as stored."""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    """Events that verified before the first problem (all of them when ok)."""
    first_broken: int | None = None
    """Seq of the first event that does not verify."""
    problem: str = ""
    anchored: int | None = None
    """The highest anchored seq the chain was checked against (None: no anchor to check)."""
    head: str = ""
    """The hash of the last event, when the caller looked it up."""


@dataclass(frozen=True)
class Anchor:
    """The head of the chain as it was right after a commit: seq, hash and the event's time."""

    seq: int
    hash: str
    at: str


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def audit_data_text(data: dict[str, Any]) -> str:
    """The text stored in the data column. Never refuses an event: a commit that records a decision
    must not fail because a metric was NaN or an enum slipped into the data."""
    text = canonical_json(_jsonable(data))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from remote text cannot be stored as UTF-8; the escaped form can.
        text = json.dumps(_jsonable(data), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text


def event_hash(
    prev_hash: str, seq: int, at: float, actor: str, origin: str, action: str, target: str, data_text: str
) -> str:
    content = {
        "prev_hash": prev_hash,
        "seq": int(seq),
        "at": float(at) + 0.0,  # -0.0 -> 0.0: SQLite reads a stored -0.0 back as 0.0
        "actor": actor,
        "origin": origin,
        "action": action,
        "target": target,
        "data": data_text,
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8", "surrogatepass")).hexdigest()


def verify_rows(rows: Iterable[AuditRow | tuple[Any, ...]]) -> VerifyResult:
    """Check stored rows in seq order; stops at the first problem."""
    checked = 0
    prev_seq = 0
    prev_hash = GENESIS
    for seq, at, actor, origin, action, target, data_text, stored_prev, stored_hash in rows:
        if seq != prev_seq + 1:
            problem = (
                f"gap: event {seq} follows {prev_seq}" if prev_seq else f"gap: the log starts at event {seq}"
            )
            return VerifyResult(False, checked, seq, problem)
        if stored_prev != prev_hash:
            link = f"event {prev_seq}" if prev_seq else "the genesis hash"
            return VerifyResult(False, checked, seq, f"event {seq}: prev_hash does not link to {link}")
        try:
            expected = event_hash(stored_prev, seq, at, actor, origin, action, target, data_text)
        except (TypeError, ValueError):
            expected = None  # a column holds something that is not what was written
        if expected != stored_hash:
            return VerifyResult(False, checked, seq, f"event {seq}: hash does not match its content")
        checked += 1
        prev_seq, prev_hash = seq, stored_hash
    return VerifyResult(True, checked)


def verify(events: Iterable[Any]) -> VerifyResult:
    """Verify AuditEvent-like objects (attributes seq … hash). Their data is a dict, so this re-derives
    the stored text with audit_data_text; verify_rows on the raw rows is the stricter check."""
    return verify_rows(
        (e.seq, e.at, e.actor, e.origin, e.action, e.target, audit_data_text(e.data), e.prev_hash, e.hash)
        for e in events
    )


def check_anchors(
    result: VerifyResult, hashes: Mapping[int, str], anchors: Sequence[Anchor], where: str
) -> VerifyResult:
    """A verified chain (`result`, with `hashes` of the anchored seqs as stored) checked against the
    anchors kept at `where`: it must reach the highest anchor and hold the anchored hash at every
    anchored seq. Anchors may be out of order (processes commit and anchor concurrently)."""
    if not result.ok or not anchors:
        return result
    head = result.checked  # a verified chain holds events 1..checked
    top = max(anchors, key=lambda a: a.seq)
    if top.seq > head:
        ends = f"ends at event {head}" if head else "is empty"
        missing = f"event {top.seq} is" if top.seq == head + 1 else f"events {head + 1}..{top.seq} are"
        problem = (
            f"the chain {ends}, but {where} anchors event {top.seq} (hash {top.hash}, {top.at}): "
            f"{missing} missing"
        )
        return replace(result, ok=False, first_broken=head + 1, problem=problem, anchored=top.seq)
    for a in sorted(anchors, key=lambda a: a.seq):
        stored = hashes.get(a.seq)
        if stored != a.hash:
            problem = (
                f"event {a.seq} has hash {stored}, but {where} anchored it as {a.hash} ({a.at}): "
                "the chain was rewritten from there"
            )
            return replace(result, ok=False, first_broken=a.seq, problem=problem, anchored=top.seq)
    return replace(result, anchored=top.seq)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return _jsonable(obj.value)
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((_jsonable(v) for v in obj), key=canonical_json)
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    return str(obj)
