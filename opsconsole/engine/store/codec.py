"""Model dataclasses <-> the JSON text the store keeps.

Decoding is driven by the dataclasses' own type hints, so a field added to model.py is stored and read
back without touching this file; a stored body that lacks a newer field gets the field's default,
and keys that no longer exist are ignored (rows written by another version still load).
JSON is canonical (sorted keys, compact) so equal values are equal text. NaN and infinities are kept
(Python's JSON reads them back): a weird metric value must never make a rollout unsaveable.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, fields, is_dataclass, replace
from enum import Enum
from functools import cache
from typing import Any

from ..improvements.model import Improvement
from ..model import FlagValue, GateVerdict, Rollout

ROLLOUT_COLUMNS = ("id", "plan", "state", "started_by", "created_at", "updated_at", "version")
"""Rollout fields kept in their own columns (queried or compared); the rest goes into `body`."""


def dumps(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be stored as UTF-8 text; their \u escapes can, and read back the same.
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text


def loads(text: str) -> Any:
    return json.loads(text)


# ------------------------------------------------------------------------------------ rollouts


def rollout_to_body(r: Rollout) -> str:
    encoded = to_jsonable(r)
    return dumps({k: v for k, v in encoded.items() if k not in ROLLOUT_COLUMNS})


def rollout_from_row(
    id: str,
    plan: str,
    state: str,
    started_by: str,
    created_at: float,
    updated_at: float,
    version: int,
    body: str,
) -> Rollout:
    data = loads(body)
    data.update(
        id=id,
        plan=plan,
        state=state,
        started_by=started_by,
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )
    rollout: Rollout = from_jsonable(Rollout, data)
    return rollout


def verdict_to_text(v: GateVerdict) -> str:
    # Not GateVerdict.to_dict: that leaves out inconclusive and escalate.
    return dumps(to_jsonable(v))


def verdict_from_text(text: str) -> GateVerdict:
    verdict: GateVerdict = from_jsonable(GateVerdict, loads(text))
    return verdict


def flag_value_to_text(value: FlagValue | None) -> str:
    return dumps(value)


def flag_value_from_text(text: str | None) -> FlagValue | None:
    if text is None:
        return None
    value = loads(text)
    if value is not None and not isinstance(value, bool | int):
        raise ValueError(f"stored flag value {text!r} is not a boolean or an integer")
    return value


# ------------------------------------------------------------------------------------ improvements

IMPROVEMENT_COLUMNS = ("environment", "status", "updated_at", "version")
"""Improvement fields kept in their own columns; `id` and `quality` are also columns, but they live
inside the proposal, which the body keeps whole."""


def improvement_to_body(item: Improvement) -> str:
    encoded = to_jsonable(item)
    return dumps({k: v for k, v in encoded.items() if k not in IMPROVEMENT_COLUMNS})


_IMPROVEMENT_CACHE: dict[tuple[str, str, float, int, str], Improvement] = {}
_IMPROVEMENT_CACHE_MAX = 50_000


def remember_improvement(item: Improvement, body: str) -> None:
    """What a write just stored, so the next read of that row need not decode it."""
    if len(_IMPROVEMENT_CACHE) >= _IMPROVEMENT_CACHE_MAX:
        _IMPROVEMENT_CACHE.clear()
    if not isinstance(item.updated_at, float):
        item = replace(item, updated_at=float(item.updated_at))  # as a read gives it back
    key = (item.environment, str(item.status), item.updated_at, int(item.version), body)
    _IMPROVEMENT_CACHE[key] = item


def improvement_from_row(
    environment: str, status: str, updated_at: float, version: int, body: str
) -> Improvement:
    # The pane and the runner read thousands of items that rarely change; records are frozen, so an
    # identical row (its body included) shares the item decoded before: decoding is most of a read.
    key = (environment, status, updated_at, version, body)
    cached = _IMPROVEMENT_CACHE.get(key)
    if cached is not None:
        return cached
    data = loads(body)
    data.update(environment=environment, status=status, updated_at=updated_at, version=version)
    item: Improvement = from_jsonable(Improvement, data)
    if len(_IMPROVEMENT_CACHE) >= _IMPROVEMENT_CACHE_MAX:
        _IMPROVEMENT_CACHE.clear()
    _IMPROVEMENT_CACHE[key] = item
    return item


# ------------------------------------------------------------------------------------ generic


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def from_jsonable(hint: Any, value: Any) -> Any:
    """Rebuild a value of type `hint` from what to_jsonable produced."""
    return _decoder(hint)(value)


Decoder = typing.Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


@cache
def _decoder(hint: Any) -> Decoder:
    """A decoder per type hint, built once: the runner and the kill switch decode every active
    rollout, so walking the type hints on every value would be the slowest part of a read."""
    if hint is Any or hint is object:
        return _same
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda v: tuple(item(x) for x in v)
        items = [_decoder(a) for a in args]
        return lambda v: tuple(d(x) for d, x in zip(items, v, strict=True))
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        kd, vd = _decoder(key_hint), _decoder(value_hint)
        return lambda v: {kd(k): vd(x) for k, x in v.items()}
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        item = _decoder(item_hint)
        return lambda v: [item(x) for x in v]
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return hint
        if is_dataclass(hint):
            return _dataclass_decoder(hint)
        if hint is float:
            return lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    return _same


def _union_decoder(args: tuple[Any, ...]) -> Decoder:
    candidates = [a for a in args if a is not type(None)]
    if len(candidates) == 1:
        inner = _decoder(candidates[0])
        return lambda v: None if v is None else inner(v)
    # A union of plain JSON types (FlagValue = bool | int): JSON already kept the right one.
    return _same


def _dataclass_decoder(cls: type) -> Decoder:
    hints = _hints(cls)
    plan = [
        (f.name, _decoder(hints[f.name]), f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    ]

    def decode(data: dict[str, Any]) -> Any:
        kwargs = {}
        for name, dec, required in plan:
            if name in data:
                kwargs[name] = dec(data[name])
            elif required:
                raise ValueError(f"stored {cls.__name__} lacks the required field {name!r}")
        return cls(**kwargs)

    return decode


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
