"""The kill switch's safe flag files from the cached kill plan, with the standard library alone.

A fresh `opsconsole kill` process has 100 ms to make the flag files safe; the interpreter and `site`
take about 30 ms of that, and importing the engine's model (dozens of dataclasses), the flag logic
and the targets would take the rest and more (bench/README.md). So this module reads `kill-plan.json` and
`active-canaries.json` (killplan.py, killswitch.py) as plain dicts and does steps 1 and 2 of
killswitch.py itself: the journal line (appended, fsynced), then every flag file (atomic, fsynced),
giving up the reserve on a full disk. The store is recorded afterwards, by the engine, as usual.

It imports nothing from the engine but `fsutil` and `identity` (standard library only), and the
journal line, the export lock and the reserve live here for killswitch.py to share. The three
`_*_patch` functions repeat the targets' `kill_patch` on plain data: they must write the same bytes
(tests/faults/test_kill_fast.py compares them), so a change to a target's kill patch goes here too.
Whenever the cache does not vouch for the configuration, or the user may not kill on its word, the
caller falls back to the whole path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from .fsutil import fsync_dir, write_atomic_many
from .identity import os_user, ssh_origin

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

try:  # hashlib loads OpenSSL (about 3 ms here); the built-in module gives the same digests
    from _sha256 import sha256
except ImportError:  # not built, or Python 3.12+ (where it is _sha2): hashlib's
    from hashlib import sha256

if TYPE_CHECKING:
    from typing import Any


KILL_PLAN = "kill-plan.json"
PLAN_VERSION = 1
JOURNAL = "kill-journal.jsonl"
CANARY_CACHE = "active-canaries.json"
RESERVE = ".kill-reserve"
LOCK_WAIT = 0.02
"""The longest the kill switch waits for an export in progress before it writes anyway."""
ROLE_RANKS = {"VIEWER": 0, "OPERATOR": 1, "APPROVER": 2, "ADMIN": 3}
ENGAGE_RANK = ROLE_RANKS["OPERATOR"]
"""model.Role and authz.ACTIONS["kill_switch.engage"] by name (a test keeps them equal)."""

PERCENTAGE = "percentage"
VARIANT = "variant"
ALL_AT_ONCE = "all_at_once"
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
_FLAGD_KEYS = frozenset(
    {"state", "variants", "defaultVariant", "targeting", "metadata", "source", "selector"}
)
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")
_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class PlanFlag:
    """A flag definition as the kill plan keeps it (the part of model.FlagDef the kill switch reads)."""

    __slots__ = ("type", "depends_on", "environments", "variants")

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.type = str(body["type"])
        self.depends_on: str | None = body["depends_on"]
        self.environments = tuple(body["environments"])
        self.variants = tuple((str(v), int(w)) for v, w in body["variants"])

    def in_environment(self, environment: str | None) -> bool:
        return not self.environments or environment is None or environment in self.environments


class KillPlan:
    """kill-plan.json, checked: what killplan.load would build a Config from, as plain data."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        ks = body["kill_switch"]
        self.flags_off = tuple(ks["flags_off"])
        self.flags_on = tuple(ks["flags_on"])
        roles = body["roles"]
        self.default_rank = ROLE_RANKS[roles["default"]]
        self.user_ranks = {str(u): ROLE_RANKS[r] for u, r in roles["users"].items()}
        self.targets: dict[str, tuple[str, str | None, str | None] | None] = {
            str(name): None if t is None else (str(t["path"]), t.get("flagd"), t.get("dotenv"))
            for name, t in body["environments"].items()
        }
        self.flags = {str(name): PlanFlag(d) for name, d in body["flags"].items()}
        self.every_canary = {str(env): set(names) for env, names in body["every_canary"].items()}

    def may_engage(self, user: str) -> bool:
        return self.user_ranks.get(user, self.default_rank) >= ENGAGE_RANK


def load_plan(config_path: str | os.PathLike[str], workspace: Path) -> KillPlan | None:
    """The kill plan cached for `config_path`, or None when it is missing, damaged or any file the
    configuration came from changed since (killplan.load's rules)."""
    try:
        with open(workspace / KILL_PLAN, "rb") as fh:
            body = json.loads(fh.read())
        if body.get("version") != PLAN_VERSION or body["config"] != os.path.abspath(config_path):
            return None
        if stamp(p for p, _, _ in body["stamp"]) != body["stamp"]:
            return None
        return KillPlan(body)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def stamp(paths: Iterable[str]) -> list[list[Any]] | None:
    """[path, size, mtime_ns] of each file, or None when one is missing."""
    out: list[list[Any]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        out.append([path, st.st_size, st.st_mtime_ns])
    return out


def cached_canaries(workspace: Path, every_canary: dict[str, set[str]]) -> dict[str, set[str]]:
    """killswitch.cached_canaries on the plan's canaries."""
    try:
        with open(workspace / CANARY_CACHE, "rb") as fh:
            obj = json.loads(fh.read())
        return {str(env): {str(n) for n in names} for env, names in obj["canaries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return every_canary


# ---------------------------------------------------------------------------- shared with killswitch


def append_journal(
    workspace: Path, user: str, origin: str, reason: str, at: float, zero: Mapping[str, Iterable[str]]
) -> str:
    """Append one engagement to the journal (fsynced); returns the line's hash."""
    line = json.dumps(
        {
            "id": os.urandom(8).hex(),
            "at": at,
            "user": user,
            "origin": origin,
            "reason": reason,
            "zero": {env: sorted(names) for env, names in sorted(zero.items())},
        },
        sort_keys=True,
    ).encode()
    path = workspace / JOURNAL
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        # One write of a short line: appends from several processes never interleave.
        os.write(fd, line + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(workspace)
    digest: str = sha256(line).hexdigest()
    return digest


@contextlib.contextmanager
def export_lock(workspace: Path, wait: float = 1.0) -> Iterator[bool]:
    """Serialises flag-file writers across processes so a stale export cannot land after the kill
    switch's; gives up after `wait` seconds (yielding False) rather than make anyone wait longer."""
    workspace.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace / "flags.lock", os.O_CREAT | os.O_RDWR, 0o644)
    got = False
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.002)
        yield got
    finally:
        if got:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def free_reserve(workspace: Path) -> bool:
    try:
        os.unlink(workspace / RESERVE)
    except OSError:
        return False
    return True


def with_room(workspace: Path, write: Callable[[], Any]) -> Any:
    """Run `write`; on a full disk give up the reserve and try once more."""
    try:
        return write()
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not free_reserve(workspace):
            raise
        return write()


# ---------------------------------------------------------------------------------------- the path


def make_safe(
    plan: KillPlan, workspace: Path, user: str, origin: str, reason: str, now: float
) -> dict[str, Any]:
    """killswitch.make_safe on the plan: the journal line, then every flag file. Returns the fields
    of killswitch.SafeFiles."""
    t0 = time.perf_counter()
    zero = cached_canaries(workspace, plan.every_canary)
    errors: list[str] = []
    digest = ""
    files: list[str] = []
    with export_lock(workspace, wait=LOCK_WAIT):
        try:
            digest = with_room(workspace, lambda: append_journal(workspace, user, origin, reason, now, zero))
        except OSError as exc:
            errors.append(f"kill journal {workspace / JOURNAL}: {exc.strerror or exc}")
        try:
            files = with_room(workspace, lambda: write_safe_files(plan, zero, now))
        except OSError as exc:
            errors.append(f"flag files: {exc}")
            files = []
    return {
        "at": now,
        "files": files,
        "journal_hash": digest,
        "error": "; ".join(errors),
        "ms": (time.perf_counter() - t0) * 1000,
    }


def engage(config_path: str | os.PathLike[str], workspace: Path, reason: str) -> dict[str, Any] | None:
    """Steps 1 and 2 of the kill switch from the cached plan; None (nothing written) when the plan is
    not there to vouch for the configuration or this user may not engage on its word."""
    plan = load_plan(config_path, workspace)
    if plan is None:
        return None
    user = os_user()
    if not plan.may_engage(user):
        return None  # the whole path refuses it, with the reason
    origin = ssh_origin(os.environ) or "local"
    return make_safe(plan, workspace, user, origin, reason, time.time())


def write_safe_files(plan: KillPlan, zero: Mapping[str, set[str]], at: float) -> list[str]:
    """killswitch.write_safe_files on the plan."""
    items: list[tuple[Path, bytes]] = []
    errors: list[Exception] = []
    for env, target in plan.targets.items():
        if target is None:
            continue
        path, flagd, dotenv = target
        patches: list[tuple[str, Callable[..., bytes]]] = [(path, _flagfile_patch)]
        if flagd:
            patches.append((flagd, _flagd_patch))
        if dotenv:
            patches.append((dotenv, _dotenv_patch))
        canaries = zero.get(env, set())
        for file, patch in patches:
            try:
                data = patch(Path(file), plan, canaries, at, env)
            except Exception as exc:
                errors.append(exc)
            else:
                items.append((Path(file), data))
    return write_all(items, errors)


def write_all(items: list[tuple[Path, bytes]], errors: list[Exception]) -> list[str]:
    """Write every patched file (one batch: atomic, fsynced), then raise the first error of the
    patching or the writing once every file has been tried; the paths written otherwise. Shared
    with killswitch.write_safe_files."""
    failed = write_atomic_many(items)
    errors.extend(exc for _, exc in failed)
    if errors:
        raise errors[0]
    bad = {str(p) for p, _ in failed}
    return [str(p) for p, _ in items if str(p) not in bad]


# ------------------------------------------------------------------- the targets' kill_patch, again


def iso_utc(ts: float) -> str:
    """units.iso_utc, without importing datetime (2 ms here): the microseconds rounded half to even
    as datetime.fromtimestamp rounds them, then cut to milliseconds as isoformat cuts them."""
    whole = int(ts)  # towards zero, as C's modf
    micro = round((ts - whole) * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    t = time.gmtime(whole)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f".{micro // 1000:03d}Z"
    )


if TYPE_CHECKING:
    State = tuple[str, Any, str, str]
    """(type, value, decided_by, detail): what flags.FlagState holds for a forced flag."""


def kill_states(
    flags_off: Iterable[str],
    flags_on: Iterable[str],
    zero: Iterable[str],
    defs: Mapping[str, PlanFlag],
    environment: str | None,
) -> dict[str, State]:
    """flagd.kill_states."""

    def here(name: str) -> bool:
        defn = defs.get(name)
        return defn is None or defn.in_environment(environment)

    def kind(name: str) -> str:
        defn = defs.get(name)
        return defn.type if defn is not None else "boolean"

    def on(t: str) -> Any:
        return 100 if t == PERCENTAGE else True

    def off(t: str) -> Any:
        return 0 if t == PERCENTAGE else False

    out: dict[str, State] = {}
    for name in flags_on:
        if here(name):
            out[name] = (kind(name), on(kind(name)), "kill_switch", "")
    offs = [name for name in (*flags_off, *zero) if here(name)]
    for name in offs:
        out[name] = (kind(name), off(kind(name)), "kill_switch", "")
    if offs and defs:
        children: dict[str, list[str]] = {}
        for name, defn in defs.items():
            if defn.depends_on is not None and defn.in_environment(environment):
                children.setdefault(defn.depends_on, []).append(name)
        blocked = set(offs)
        stack = [(name, name) for name in offs]
        while stack:
            parent, root = stack.pop()
            for child in children.get(parent, ()):
                if child not in blocked:
                    blocked.add(child)
                    out[child] = (kind(child), off(kind(child)), "parent", root)
                    stack.append((child, root))
    return out


def _c_encoder(ascii_only: bool, sort_keys: bool) -> Callable[[Any], str]:
    """The targets' reusable C encoders (flagfile: sorted keys, UTF-8; flagd: insertion order, ASCII)."""
    plain = json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=ascii_only)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return plain.encode
    quote = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.c_encode_basestring  # type: ignore[attr-defined]
    c_encode = make(None, plain.default, quote, None, ": ", ", ", sort_keys, False, True)
    return lambda obj: "".join(c_encode(obj, 0))


_encode_sorted = _c_encoder(False, True)
_quote_ascii: Callable[[str], str] = json.encoder.encode_basestring_ascii
_encode_ascii = _c_encoder(True, False)


def _flagfile_patch(path: Path, plan: KillPlan, zero: Iterable[str], at: float, environment: str) -> bytes:
    """targets.flagfile.kill_patch."""
    document = _flagfile_read(path)
    if document is None:
        document = {"version": 1, "flags": {}}
    flags: dict[str, Any] = document["flags"]
    zero = list(zero)
    for name in plan.flags_on:
        _flagfile_set(flags, name, True, ALL_AT_ONCE)
    for name in plan.flags_off:
        _flagfile_set(flags, name, False, ALL_AT_ONCE)
    for name in zero:
        _flagfile_set(flags, name, False, PERCENTAGE)
    if plan.flags:
        for name, (kind, _, decided_by, _) in kill_states(
            plan.flags_off, (), zero, plan.flags, environment
        ).items():
            if decided_by == "parent":
                _flagfile_set(flags, name, False, PERCENTAGE if kind == PERCENTAGE else ALL_AT_ONCE, "parent")
    document["emergency_shutdown"] = True
    document["generated_at"] = iso_utc(at)
    lines = ["{"]
    keys = sorted(document)
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = document[key]
        if key == "flags" and isinstance(value, Mapping) and value:
            lines.append(f"  {_encode_sorted(key)}: {{")
            lines.append(
                ",\n".join(f"    {_encode_sorted(n)}: {_encode_sorted(value[n])}" for n in sorted(value))
            )
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {_encode_sorted(key)}: {_encode_sorted(value)}{comma}")
    lines.append("}\n")
    return "\n".join(lines).encode("utf-8")


def _flagfile_set(
    flags: dict[str, Any], name: str, on: bool, strategy_if_new: str, decided_by: str = "kill_switch"
) -> None:
    entry = flags.get(name)
    if entry is None:
        entry = flags[name] = {"rollout_strategy": strategy_if_new}
    entry["enabled"] = on
    entry["rollout_percentage"] = 100 if on else 0
    entry["decided_by"] = decided_by
    entry.pop("detail", None)


def _flagfile_read(path: Path) -> dict[str, Any] | None:
    """The document at `path`, or None where flagfile.read raises FlagFileError."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return None
    if not isinstance(document.get("emergency_shutdown", False), bool):
        return None
    for entry in document["flags"].values():
        if not isinstance(entry, dict) or not isinstance(entry.get("enabled"), bool):
            return None
        percentage = entry.get("rollout_percentage", 100)
        if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
            return None
        if not isinstance(entry.get("rollout_strategy", ALL_AT_ONCE), str):
            return None
    return document


def _flagd_patch(path: Path, plan: KillPlan, zero: Iterable[str], at: float, environment: str) -> bytes:
    """targets.flagd.kill_patch."""
    document = _flagd_read_usable(path)
    flags: dict[str, Any] = document["flags"]
    for name, state in kill_states(plan.flags_off, plan.flags_on, zero, plan.flags, environment).items():
        flags[name] = _flagd_entry(state, plan.flags.get(name))
    document["flags"] = dict(sorted(flags.items()))
    meta: dict[str, Any] = {"generatedBy": "opsconsole", "generatedAt": iso_utc(at)}
    meta["environment"] = environment
    meta["emergencyShutdown"] = True
    document["metadata"] = meta
    keys = sorted(document, key=lambda k: (k != "$schema", k == "flags", k))
    lines = ["{"]
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = document[key]
        if key == "flags" and isinstance(value, Mapping) and value:
            lines.append(f"  {_quote_ascii(key)}: {{")
            lines.append(",\n".join(f"    {_quote_ascii(n)}: {_encode_ascii(f)}" for n, f in value.items()))
            lines.append(f"  }}{comma}")
        else:
            lines.append(f"  {_quote_ascii(key)}: {_encode_ascii(value)}{comma}")
    lines.append("}\n")
    return "\n".join(lines).encode("ascii")


def _flagd_entry(state: State, defn: PlanFlag | None) -> dict[str, Any]:
    """flagd.entry for a state the kill switch forced (so targeting lists never apply)."""
    kind, value, decided, detail = state
    meta: dict[str, Any] = {"decidedBy": decided}
    if detail:
        meta["detail"] = detail
    if kind == VARIANT and defn is not None and defn.variants:
        first = defn.variants[0][0]
        targeting = {"fractional": [[n, w] for n, w in defn.variants]} if value else None
        return _flagd_flag({n: n for n, _ in defn.variants}, first, targeting, meta)
    if kind == PERCENTAGE:
        pct = int(value)
        meta["percentage"] = pct
        if 0 < pct < 100:
            return _flagd_flag(
                {"on": True, "off": False}, "off", {"fractional": [["on", pct], ["off", 100 - pct]]}, meta
            )
        return _flagd_flag({"on": True, "off": False}, "on" if pct >= 100 else "off", None, meta)
    return _flagd_flag({"on": True, "off": False}, "on" if value else "off", None, meta)


def _flagd_flag(
    variants: dict[str, Any], default: str, targeting: Any, meta: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {"state": "ENABLED", "variants": variants, "defaultVariant": default}
    if targeting is not None:
        out["targeting"] = targeting
    out["metadata"] = meta
    return out


def _flagd_read_usable(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return {"$schema": FLAGD_SCHEMA, "flags": {}}
    document["flags"] = {k: v for k, v in document["flags"].items() if k and _flagd_usable(v)}
    if not isinstance(document.get("$evaluators"), (dict, type(None))):
        del document["$evaluators"]
    document.setdefault("$schema", FLAGD_SCHEMA)
    return document


def _flagd_usable(flag: Any) -> bool:
    if not isinstance(flag, dict) or not _FLAGD_KEYS.issuperset(flag):
        return False
    if flag.get("state") not in ("ENABLED", "DISABLED"):
        return False
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        return False
    default = flag.get("defaultVariant")
    if default is not None and not isinstance(default, (str, bool)):
        return False
    if not isinstance(flag.get("targeting", {}), dict):
        return False
    meta = flag.get("metadata", {})
    return isinstance(meta, dict) and all(
        isinstance(k, str) and k and isinstance(v, (str, int, float, bool)) for k, v in meta.items()
    )


def _dotenv_patch(path: Path, plan: KillPlan, zero: Iterable[str], at: float, environment: str) -> bytes:
    """targets.dotenv.kill_patch."""
    values: dict[str, str] = {}
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("# opsconsole flags: environment "):
            continue
        m = _ASSIGNMENT.fullmatch(line)
        if m:
            values[m.group(1)] = m.group(2).strip()
    for name, (kind, value, _, _) in kill_states(
        plan.flags_off, plan.flags_on, zero, plan.flags, environment
    ).items():
        values[_ENV_UNSAFE.sub("_", name).upper()] = (
            str(int(value)) if kind == PERCENTAGE else ("true" if value else "false")
        )
    header = [
        f"# opsconsole flags: environment {environment}, generated {iso_utc(at)}",
        "# generated by opsconsole; edits are overwritten",
        "# EMERGENCY: the kill switch is engaged (safe state written without the store)",
    ]
    body = [f"{name}={values[name]}" for name in sorted(values)]
    return ("\n".join([*header, *body]) + "\n").encode("utf-8")
