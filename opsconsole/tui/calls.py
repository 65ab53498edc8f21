"""The one path every engine call from the console takes, with one error policy.

A call runs in a thread worker, never on the event loop, and never ends the console, whatever it
raises:

- a refusal (the engine's Rejected, Forbidden, NotFound, Conflict, UnknownFlag, or a ValueError
  about what was typed) is the engine's answer: shown with its reason;
- a StoreError is the store being locked by another process or unreachable: said as such. Store
  transactions roll back when they fail, so nothing was changed;
- anything else is shown with its type, and the console goes on.

Where it is shown: in the dialog that asked when it is still open (`failed`), else as a notification
that names the action. Background reads repeat every tick, so the same failure is notified once, not
once a tick.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.dom import DOMNode

import opsconsole.engine as facade

if TYPE_CHECKING:
    REFUSALS: tuple[type[Exception], ...]
REPEAT_AFTER = 30.0
"""Seconds before the same failure of the same action is notified again."""

_notified: weakref.WeakKeyDictionary[App[Any], dict[str, tuple[str, float]]] = weakref.WeakKeyDictionary()
"""Per app: the last failure notified for each quiet action, and when."""


def __getattr__(name: str) -> Any:
    """REFUSALS, looked up when first asked for: the engine's modules load with the engine, after the
    console's first frame, not when a pane's module imports this one."""
    if name == "REFUSALS":
        return _refusals()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _refusals() -> tuple[type[Exception], ...]:
    """The engine's refusals (Rejected, Forbidden, NotFound, Conflict, UnknownFlag) and ValueError."""
    e = facade
    return (e.Rejected, e.Forbidden, e.NotFound, e.Conflict, e.UnknownFlag, ValueError)


def explain(exc: BaseException) -> str:
    """What the person at the console needs to know about a failed engine call."""
    if isinstance(exc, _refusals()):
        return f"refused: {exc}"
    if isinstance(exc, facade.StoreError):
        text = str(exc)
        kind = "store busy" if ("locked" in text or "busy" in text) else "store unavailable"
        return f"{kind}: {text} — nothing was changed"
    return f"failed: {type(exc).__name__}: {exc}"


def title_of(exc: BaseException) -> str:
    if isinstance(exc, _refusals()):
        return "refused"
    if isinstance(exc, facade.StoreError):
        return "store"
    return "error"


def call(
    node: DOMNode,
    fn: Callable[..., Any],
    *args: Any,
    action: str,
    done: Callable[[Any], Any] | str | None = None,
    failed: Callable[[str], Any] | None = None,
    group: str = "engine",
    exclusive: bool = False,
    quiet: bool = False,
    **kwargs: Any,
) -> None:
    """Run `fn(*args, **kwargs)` off the event loop. On success `done(result)` runs on the loop (a
    string is notified instead). On failure `failed(message)` runs on the loop while `node` is still
    on screen, else the failure is notified naming `action`. `quiet` (background reads) notifies a
    repeated failure only once in a while."""
    app = node.app

    def work() -> None:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the policy above: shown, never fatal
            app.call_from_thread(_failed, app, node, action, exc, failed, quiet)
            return
        if done is not None:
            app.call_from_thread(_done, app, action, done, result)

    # The worker belongs to the app, not to a dialog: its answer arrives even if the dialog is gone.
    app.run_worker(work, name=action, group=group, exclusive=exclusive, thread=True, exit_on_error=False)


def _done(app: App[Any], action: str, done: Callable[[Any], Any] | str, result: Any) -> None:
    if isinstance(done, str):
        app.notify(done, timeout=4, markup=False)
        return
    try:
        done(result)
    except Exception as exc:  # noqa: BLE001 - a screen closed under us: the call itself succeeded
        app.notify(f"{action}: done, but the screen could not show it: {exc}", timeout=6, markup=False)


def _failed(
    app: App[Any],
    node: DOMNode,
    action: str,
    exc: BaseException,
    failed: Callable[[str], Any] | None,
    quiet: bool,
) -> None:
    message = explain(exc)
    if failed is not None and node.is_attached:
        try:
            failed(message)
            return
        except Exception:  # noqa: BLE001 - the dialog went away meanwhile: notify instead
            pass
    if quiet and not _first_time(app, action, message):
        return
    app.notify(f"{action}: {message}", title=title_of(exc), severity="error", timeout=10, markup=False)


def _first_time(app: App[Any], action: str, message: str) -> bool:
    seen = _notified.setdefault(app, {})
    now = time.monotonic()
    last = seen.get(action)
    if last is not None and last[0] == message and now - last[1] < REPEAT_AFTER:
        return False
    seen[action] = (message, now)
    return True
