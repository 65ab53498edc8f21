"""Loading and validating the configuration: the main file, its plans and its flags.

Everything is checked before anything is used, and every problem found is reported in one pass with
its file, line and dotted key ("config/plans/x.yaml:12: phases[1].gates[0].max: expected a number,
got 'abc'"), because an engineer fixing a config at 3 a.m. should not have to run the check ten
times. Loading only reads files; a config that fails to load never changes any state.

Relative paths (plans, flags file, flag targets) are relative to the directory of the file that names
them, not to the current directory, so a config means the same thing wherever the console starts.
Strings may use `${NAME}` / `${NAME:-default}`: the caller's variables (WORKSPACE), CONFIG_DIR (the
directory of the file being read), then the process environment; `$${` is a literal `${`.

Where things are: `main.py` reads the main file section by section (`environments.py`,
`flagdefs.py`, `alarmrules.py`, `notifications.py`, `killswitch.py`), `plans.py` / `phases.py` /
`gates.py` read plans, `values.py` parses durations, steps and the like, and `yamlsrc.py` /
`fields.py` read YAML nodes while keeping their lines; issues are collected in `issues.py`.
"""

from __future__ import annotations

from ..units import format_duration
from .issues import ConfigError, ConfigIssue
from .main import DEFAULT_STORE as DEFAULT_STORE
from .main import load_config
from .notifications import NOTIFY_EVENTS as NOTIFY_EVENTS
from .plans import load_plan
from .values import STEP_PRESETS, parse_duration, parse_steps

__all__ = [
    "STEP_PRESETS",
    "ConfigError",
    "ConfigIssue",
    "format_duration",
    "load_config",
    "load_plan",
    "parse_duration",
    "parse_steps",
]
