"""The hash chain that makes the audit log tamper-evident.

Every event's hash covers its own stored values and the previous event's hash, so changing, removing
or reordering any stored event breaks the chain from that point on. Pure: the store hands rows in.

What is hashed is exactly what is stored: the data column's TEXT (not the dict it decodes to, so an
edit that only adds a space is still caught) and `at` as the float the DOUBLE PRECISION column gives
back. JSON writes a float as its shortest round-tripping repr, and both SQLite (REAL) and PostgreSQL
(DOUBLE PRECISION) return the same IEEE double that was written, so the hash is stable across a
read back. The chain proves internal consistency only: someone who rewrites every later event and
recomputes the hashes is caught only by comparing the latest hash with a copy kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
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
