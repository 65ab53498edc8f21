"""The hash chain (pure part) and the actor identity. The store-backed chain is in test_store.py."""

from __future__ import annotations

import json
import math
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass

import pytest

from opsconsole.engine.audit import (
    GENESIS,
    audit_data_text,
    canonical_json,
    event_hash,
    verify,
    verify_rows,
)
from opsconsole.engine.identity import current_actor, ssh_origin
from opsconsole.engine.model import AuditEvent, RolloutState


def chain(n: int) -> list[tuple]:
    """n correctly linked rows as the store would hold them."""
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        at, data = 1_700_000_000.1 + seq / 3, audit_data_text({"n": seq, "why": "tick"})
        h = event_hash(prev, seq, at, "alice", "ssh 10.0.0.1:5000", "rollout.transition", "rollout:r1", data)
        rows.append(
            (seq, at, "alice", "ssh 10.0.0.1:5000", "rollout.transition", "rollout:r1", data, prev, h)
        )
        prev = h
    return rows


def with_field(row: tuple, index: int, value: object) -> tuple:
    return row[:index] + (value,) + row[index + 1 :]


def test_canonical_json_is_sorted_compact_unicode_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": math.nan})


def test_intact_chain_verifies_and_empty_log_is_ok() -> None:
    assert verify_rows(chain(5)).ok and verify_rows(chain(5)).checked == 5
    empty = verify_rows([])
    assert empty.ok and empty.checked == 0 and empty.first_broken is None


@pytest.mark.parametrize("index", range(1, 7), ids=["at", "actor", "origin", "action", "target", "data"])
def test_changing_any_hashed_column_breaks_that_event(index: int) -> None:
    rows = chain(4)
    original = rows[2][index]
    changed = math.nextafter(original, math.inf) if isinstance(original, float) else original + " "
    rows[2] = with_field(rows[2], index, changed)
    res = verify_rows(rows)
    assert not res.ok
    assert res.first_broken == 3 and res.checked == 2
    assert res.problem == "event 3: hash does not match its content"


def test_whitespace_inside_data_text_is_a_change_even_though_the_json_means_the_same() -> None:
    rows = chain(3)
    spaced = rows[1][6].replace(",", ", ")
    assert json.loads(spaced) == json.loads(rows[1][6])
    rows[1] = with_field(rows[1], 6, spaced)
    assert verify_rows(rows).first_broken == 2


def test_missing_event_is_reported_as_a_gap() -> None:
    rows = chain(5)
    del rows[2]
    res = verify_rows(rows)
    assert (res.ok, res.first_broken, res.problem) == (False, 4, "gap: event 4 follows 2")


def test_log_that_does_not_start_at_one_is_a_gap() -> None:
    res = verify_rows(chain(3)[1:])
    assert (res.ok, res.first_broken, res.checked) == (False, 2, 0)
    assert "starts at event 2" in res.problem


def test_relinked_prev_hash_is_reported_as_a_broken_link() -> None:
    rows = chain(4)
    rows[2] = with_field(rows[2], 7, rows[0][8])  # event 3 now claims to follow event 1
    res = verify_rows(rows)
    assert (res.first_broken, res.problem) == (3, "event 3: prev_hash does not link to event 2")


def test_first_event_must_link_to_genesis() -> None:
    rows = chain(2)
    rows[0] = with_field(rows[0], 7, "f" * 64)
    assert verify_rows(rows).problem == "event 1: prev_hash does not link to the genesis hash"


def test_rewritten_hash_column_is_caught_at_the_next_event() -> None:
    rows = chain(3)
    rows[1] = with_field(rows[1], 8, "a" * 64)
    assert verify_rows(rows).first_broken == 2


def test_garbage_in_a_column_is_a_content_mismatch_not_a_crash() -> None:
    rows = chain(2)
    rows[1] = with_field(rows[1], 1, "not a number")
    assert verify_rows(rows).problem == "event 2: hash does not match its content"


def test_negative_zero_time_hashes_like_zero() -> None:
    # SQLite returns a stored -0.0 as 0.0; the chain must not call that tampering.
    assert event_hash(GENESIS, 1, -0.0, "a", "b", "c", "d", "{}") == event_hash(
        GENESIS, 1, 0.0, "a", "b", "c", "d", "{}"
    )


def test_verify_accepts_audit_event_objects() -> None:
    events = [
        AuditEvent(s, at, a, o, act, t, json.loads(d), p, h) for s, at, a, o, act, t, d, p, h in chain(3)
    ]
    assert verify(events).ok
    events[1] = AuditEvent(**{**events[1].__dict__, "data": {"n": 99, "why": "tick"}})
    assert verify(events).first_broken == 2


@dataclass(frozen=True)
class _Point:
    x: float


def test_audit_data_text_never_refuses_an_event() -> None:
    text = audit_data_text(
        {
            "value": math.nan,
            "inf": math.inf,
            "state": RolloutState.PAUSED,
            "p": _Point(1.5),
            "tags": {"b", "a"},
        }
    )
    assert json.loads(text) == {
        "value": "nan",
        "inf": "inf",
        "state": "paused",
        "p": {"x": 1.5},
        "tags": ["a", "b"],
    }


def test_audit_data_text_escapes_lone_surrogates_so_utf8_storage_works() -> None:
    text = audit_data_text({"remote": "bad \ud800 text"})
    text.encode("utf-8")
    assert json.loads(text) == {"remote": "bad \ud800 text"}
    assert len(event_hash(GENESIS, 1, 0.0, "a", "b", "c", "d", text)) == 64


# ------------------------------------------------------------------------------------ identity


@pytest.mark.parametrize(
    ("environ", "origin"),
    [
        ({}, None),
        ({"SSH_CONNECTION": "203.0.113.9 51234 10.0.0.5 22"}, "ssh 203.0.113.9:51234 (reported)"),
        ({"SSH_CLIENT": "203.0.113.9 51234 22"}, "ssh 203.0.113.9:51234 (reported)"),
        ({"SSH_CONNECTION": "2001:db8::7 40000 2001:db8::1 22"}, "ssh [2001:db8::7]:40000 (reported)"),
        ({"SSH_CONNECTION": "$(rm -rf /) 1 2 3"}, None),
        ({"SSH_CONNECTION": "fe80::1%\x1b[31m 1 2 3"}, None),
        ({"SSH_CONNECTION": "192.0.2.1 99999 2 3"}, "ssh 192.0.2.1 (reported)"),
        ({"SSH_CONNECTION": "", "SSH_CLIENT": "192.0.2.1 22 22"}, "ssh 192.0.2.1:22 (reported)"),
    ],
)
def test_ssh_origin(environ: dict[str, str], origin: str | None) -> None:
    assert ssh_origin(environ) == origin


def test_current_actor_is_the_real_uids_account_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "carol")
    assert current_actor({"SSH_CLIENT": "192.0.2.1 5555 22"}).to_dict() == {
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "origin": "ssh 192.0.2.1:5555 (reported)",
    }
    assert current_actor({}).origin == "local"


def test_a_uid_without_a_passwd_entry_is_named_by_its_number() -> None:
    if os.getuid() != 0:
        pytest.skip("changing to an unknown uid needs root")
    unused = next(uid for uid in range(40000, 60000) if not _has_passwd_entry(uid))
    # Imported first: the interpreter's own files need not be readable by a uid nobody has.
    script = (
        f"from opsconsole.engine.identity import os_user; import os; os.setuid({unused}); print(os_user())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"uid:{unused}"


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
