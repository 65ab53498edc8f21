"""Who is at the keyboard: the OS user and, over SSH, where they connect from.

This is what the audit log and the approval rules record as the actor. It is what the operating
system says, not a login of our own: the console trusts the account that runs it.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
from collections.abc import Mapping

from .model import Actor


def current_actor(environ: Mapping[str, str] | None = None) -> Actor:
    env = os.environ if environ is None else environ
    return Actor(_os_user(), ssh_origin(env) or "local")


def ssh_origin(environ: Mapping[str, str]) -> str | None:
    """The origin "ssh <client ip>:<port>" from SSH_CONNECTION ("ip port server_ip server_port") or SSH_CLIENT
    ("ip port server_port"); IPv6 addresses in brackets. None when not in an SSH session."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        parts = raw.split()
        try:
            ip = ipaddress.ip_address(parts[0])
        except ValueError:
            continue  # not what sshd writes: do not put arbitrary text into the audit log
        port = parts[1] if len(parts) > 1 and parts[1].isdigit() else None
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"ssh {host}:{port}" if port else f"ssh {host}"
    return None


def _os_user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        # No LOGNAME/USER and no passwd entry (e.g. an arbitrary uid in a container).
        return "unknown"
