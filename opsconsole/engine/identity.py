"""Who is at the keyboard: the OS account and, over SSH, where the session says it comes from.

This is what the audit log and the approval rules record as the actor. The account is the real uid's
passwd entry, never LOGNAME/USER/LNAME/USERNAME: anyone can set those (`USER=alice opsconsole kill`),
and a name taken from them would let a viewer act, and be audited, as an approver. The console trusts
the account that runs it, as sudo and ssh do, and nothing the process was handed.

In a team (a PostgreSQL store) the person is the login the PostgreSQL server authenticated, read
with `SELECT session_user` on the store's own connection (store.Login), never a name the client
sends: not $USER, not the OS account (two people may share one, or name theirs alike on their own
machines), not the actor a caller hands the Engine. `session_user`, not `current_user`: SET ROLE (or
`-c role=` in PGOPTIONS) changes current_user, whose privileges run the SQL, and never who acts; a
session whose session_user differs from the login it authenticated (SET SESSION AUTHORIZATION, which
only a superuser may use) is refused by the store. `roles.logins` maps a login to the person's name
where they differ (`logins: {ops_alice: alice}`); `roles.users` then gives that name's role, and two
logins mapped to one name are one person (one approval between them).
A superuser login is no exception: it acts as its login too (mapped by `roles.logins` like any
other), so two sessions of one superuser with different $USER are one person and one approval. A
superuser can still become any role and rewrite any table, audit included: a console should never
connect as one (`config check`, the store's open and `opsconsole status` warn when it does). Consoles
of a team connect with their own non-superuser logins (`opsconsole store grant`).

The SSH origin cannot be verified from inside the session: SSH_CONNECTION is copied into the
environment by sshd, but the user can overwrite it. It is recorded as "reported", and only when it
looks like what sshd writes, so nobody reads it as a checked address.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

TYPE_CHECKING = False  # not typing's: see engine/__init__.py

if TYPE_CHECKING:
    from .model import Actor
    from .store import Login


def current_actor(environ: Mapping[str, str] | None = None) -> Actor:
    # The model is imported here, not at the top: the kill switch's fast path (killfast.py) names
    # the user before the model may be imported.
    from .model import Actor

    env = os.environ if environ is None else environ
    return Actor(os_user(), ssh_origin(env) or "local")


def acting(claimed: Actor, login: Login | None, logins: Mapping[str, str]) -> Actor:
    """Who acts in a session whose caller names `claimed` on a store whose connections run as
    `login` (None: SQLite, where the caller's OS account is who acts)."""
    from .model import Actor

    if login is None:
        return claimed
    who = logins.get(login.session_user, login.session_user)
    return Actor(who, f"{claimed.origin}, login {login.session_user}")


def superuser_warning(login: Login | None) -> str | None:
    """The one-line warning the CLI prints (stderr, `status`, `config check`) when the store's
    connections run as a superuser; None otherwise (SQLite, or an ordinary login)."""
    if login is None or not login.superuser:
        return None
    return (
        f"the store's login {login.session_user} is a PostgreSQL superuser: it can rewrite anything, the "
        "audit log included; connect consoles with their own non-superuser logins (opsconsole store grant)"
    )


def os_user() -> str:
    """The real uid's account name; `uid:<n>` when the uid has no passwd entry (an arbitrary uid in a
    container), so two such users still differ and neither matches a configured name."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name or f"uid:{uid}"
    except KeyError:
        return f"uid:{uid}"


def ssh_origin(environ: Mapping[str, str]) -> str | None:
    """The origin "ssh <client ip>:<port> (reported)" from SSH_CONNECTION ("ip port server_ip server_port") or
    SSH_CLIENT ("ip port server_port"); IPv6 addresses in brackets. None when not in an SSH session."""
    import ipaddress  # only in an SSH session: the kill switch's fast path counts milliseconds

    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        parts = raw.split()
        try:
            # A scope id ("fe80::1%eth0") may hold any text, escape codes included: refuse it.
            ip = ipaddress.ip_address(parts[0]) if "%" not in parts[0] else None
        except ValueError:
            ip = None
        if ip is None:
            continue  # not what sshd writes: do not put arbitrary text into the audit log
        port = parts[1] if len(parts) > 1 and _is_port(parts[1]) else None
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"ssh {host}:{port} (reported)" if port else f"ssh {host} (reported)"
    return None


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) < 65536
