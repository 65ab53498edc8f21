"""Checks aimed at one colour of a blue_green deploy.

A metric check's `query` may say `{colour}` and `{port}`: they stand for a colour (`blue`, `green`)
and that colour's first port, as `{port}` does in a service's health URL. So one check measures the
new colour before traffic moves to it (`instance="127.0.0.1:{port}"`, `colour="{colour}"`), and the
same check measures the live colour after the deploy. Only these two exact tokens are replaced:
PromQL's own braces (`rate(x{job="a"}[1m])`) are left as written.

Only a blue_green phase with a service knows the colours' ports, so only there may a query say them
(the configuration refuses them elsewhere). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .model import GateSpec, GateVerdict

if TYPE_CHECKING:
    from .model import Config, Phase

COLOUR = "{colour}"
PORT = "{port}"
PLACEHOLDERS = (COLOUR, PORT)
COLOURS = ("blue", "green")
SAMPLE = ("blue", 8080)
"""What the placeholders are replaced with when a query's syntax is checked."""


@dataclass(frozen=True)
class Aim:
    """One colour and its first port (None: the colour has no port)."""

    colour: str
    port: int | None

    def env(self) -> dict[str, str]:
        """What a smoke command aimed at this colour gets in its environment."""
        return {
            "OPSCONSOLE_COLOUR": self.colour,
            "OPSCONSOLE_PORT": "" if self.port is None else str(self.port),
        }


def placeholders(text: str | None) -> tuple[str, ...]:
    """The placeholders `text` uses, in PLACEHOLDERS order."""
    return tuple(p for p in PLACEHOLDERS if text and p in text)


def substitute(text: str, colour: str, port: int | None) -> str:
    """`text` with the exact tokens `{colour}` and `{port}` replaced; nothing else changes."""
    return text.replace(COLOUR, colour).replace(PORT, "" if port is None else str(port))


def aimable(spec: GateSpec) -> bool:
    """A metric check whose query names a colour or its port."""
    return spec.kind == "metric" and bool(placeholders(spec.query))


def aimed(spec: GateSpec, aim: Aim | None) -> GateSpec:
    """`spec` measuring `aim`'s colour: its query substituted (other checks as they are)."""
    if aim is None or not aimable(spec):
        return spec
    return replace(spec, query=substitute(spec.query or "", aim.colour, aim.port))


def said(verdict: GateVerdict, spec: GateSpec, aim: Aim | None) -> GateVerdict:
    """A verdict of an aimed check says which colour and which query it measured."""
    if aim is None or not aimable(spec):
        return verdict
    query = substitute(spec.query or "", aim.colour, aim.port)
    return replace(verdict, reason=f"{verdict.reason} (on {aim.colour}: {query})")


def colour_ports(config: Config, phase: Phase) -> dict[str, int | None]:
    """Each colour's first port, for a blue_green phase deploying a service with a `blue_green:`
    section; empty for any other phase."""
    strategy = phase.strategy
    if strategy is None or strategy.kind != "blue_green" or not strategy.service:
        return {}
    service = config.services.get(strategy.service)
    bg = service.blue_green if service is not None else None
    if bg is None:
        return {}
    return {c: (bg.ports(c)[0] if bg.ports(c) else None) for c in COLOURS}


def aim_of(config: Config, phase: Phase, colour: str | None) -> Aim | None:
    """`colour` of `phase`'s service, or None when the phase has no colours (or none is known)."""
    ports = colour_ports(config, phase)
    if colour is None or colour not in ports:
        return None
    return Aim(colour, ports[colour])


def variants(config: Config, phase: Phase, spec: GateSpec) -> Iterator[tuple[Aim | None, GateSpec]]:
    """`spec` as it is asked of a metrics source: once per colour when it is aimable, else as is."""
    ports = colour_ports(config, phase) if aimable(spec) else {}
    if not ports:
        yield None, spec
        return
    for colour, port in ports.items():
        aim = Aim(colour, port)
        yield aim, aimed(spec, aim)
