"""Colour themes as data files: every `*.yaml` in themes/ is one theme, read when the console starts.

Files are data a user edits, so a broken one must never stop the console: it is skipped and the
problem is reported with the file, line and key, and the console falls back to the default theme.
A variable that is not a colour would otherwise surface as a stylesheet error deep inside Textual,
so values are checked here, before Textual sees them.

NO_COLOR: Textual reads `NO_COLOR` itself when the app is created and adds a filter: greyscale for
a truecolour theme, "terminal default colours" for an ANSI theme. It picks the filter for the theme
of that moment (its own truecolour default, before ours are registered), and greyscale turns an
ANSI theme such as opsconsole-16 into black on black; `follow_no_color` re-picks it whenever the
theme changes. Without colour, what must stay visible is carried by text: the header upper-cases a
production environment and shows an engaged kill switch in reverse video.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.color import Color, ColorParseError
from textual.filter import Monochrome, NoColor
from textual.theme import BUILTIN_THEMES, Theme

if TYPE_CHECKING:
    import yaml

CACHE_VERSION = 1
DEFAULT_THEME = "opsconsole-dark"
FALLBACK_THEME = "textual-dark"
"""Used only when the default theme's file is missing or broken: Textual always has it."""

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "success",
    "warning",
    "error",
)
KEYS = ("name", "dark", "ansi", "variables", *COLOUR_KEYS)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_VARIABLE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_PERCENT = re.compile(r"\d+(\.\d+)?%\Z")
_TEXT_STYLES = {"none", "not", "bold", "dim", "italic", "underline", "reverse", "strike", "blink"}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file, line and key."""


def themes_dir() -> Path:
    """The themes/ directory: the current one when run from a checkout, else the package's (the same
    rule the demo uses for config/)."""
    here = Path("themes")
    if (here / f"{DEFAULT_THEME}.yaml").exists():
        return here.absolute()
    from ..shipped import shipped

    return shipped("themes")


def load_themes(directory: Path | None = None, errors: list[str] | None = None) -> list[Theme]:
    """Every valid theme in `directory` (default: themes_dir()), in file-name order.

    Broken files are skipped; each problem is appended to `errors` (when given) as one line naming
    the file, line and key.
    """
    folder = themes_dir() if directory is None else directory
    problems: list[str] = []
    themes: list[Theme] = []
    seen: dict[str, Path] = {}
    if not folder.is_dir():
        problems.append(f"{folder}: theme directory not found; using built-in colours")
    else:
        for path in sorted(folder.glob("*.yaml")):
            try:
                theme = load_theme_file(path)
            except ThemeFileError as exc:
                problems.append(str(exc))
                continue
            if theme.name in seen:
                problems.append(f"{path}: theme '{theme.name}' is already defined in {seen[theme.name]}")
                continue
            seen[theme.name] = path
            themes.append(theme)
    if errors is not None:
        errors.extend(problems)
    return themes


def load_themes_cached(directory: Path | None, errors: list[str], cache: Path | None) -> list[Theme]:
    """load_themes, through `cache` (a JSON file of the validated themes and the problems found,
    keyed by the path, size and modification time of every theme file and of the directory): a
    console start with a current cache neither imports YAML nor parses a file. Without `cache`, or
    when it cannot be read or written, the same as load_themes."""
    folder = themes_dir() if directory is None else directory
    stamp = _stamp(folder) if cache is not None else None
    if cache is not None and stamp is not None:
        try:
            body = json.loads(cache.read_bytes())
            if body["version"] == CACHE_VERSION and body["stamp"] == stamp:
                themes = [Theme(**fields) for fields in body["themes"]]
                errors.extend(str(p) for p in body["problems"])
                return themes
        except (OSError, ValueError, KeyError, TypeError):
            pass
    problems: list[str] = []
    themes = load_themes(folder, problems)
    errors.extend(problems)
    if cache is not None and stamp is not None and stamp == _stamp(folder):
        body = {
            "version": CACHE_VERSION,
            "stamp": stamp,
            "themes": [{key: getattr(t, key) for key in KEYS} for t in themes],
            "problems": problems,
        }
        try:
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps(body, sort_keys=True) + "\n")
            os.replace(tmp, cache)
        except (OSError, TypeError, ValueError):
            pass  # no room or no rights: the next start reads the files again
    return themes


def _stamp(folder: Path) -> list[list[Any]] | None:
    """[path, size, mtime_ns] of the directory and of each theme file in it; None when unreadable."""
    try:
        entries = [folder, *sorted(folder.glob("*.yaml"))]
        out: list[list[Any]] = []
        for path in entries:
            st = path.stat()
            out.append([str(path.absolute()), st.st_size, st.st_mtime_ns])
        return out
    except OSError:
        return None


def load_theme_file(path: Path) -> Theme:
    """One theme file, validated; raises ThemeFileError naming the file, line and key."""
    import yaml  # here, not at the top: a console whose theme cache is current never needs it

    try:
        text = path.read_text(encoding="utf-8")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        try:
            # One parse: the node tree (for the lines in error messages) and the data built from it.
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ThemeFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise ThemeFileError(f"{path}: a theme file is a mapping with the keys {', '.join(KEYS)}")
    return _ThemeReader(path, _key_lines(root)).read(data)


def _key_lines(root: yaml.MappingNode) -> dict[str, int]:
    """1-based line of every key, nested keys as 'variables.name', for error messages."""
    import yaml

    lines: dict[str, int] = {}
    for key_node, value_node in root.value:
        key = str(key_node.value)
        lines.setdefault(key, key_node.start_mark.line + 1)
        if isinstance(value_node, yaml.MappingNode):
            for sub_key, _ in value_node.value:
                lines.setdefault(f"{key}.{sub_key.value}", sub_key.start_mark.line + 1)
    return lines


@dataclass
class _ThemeReader:
    path: Path
    lines: dict[str, int]

    def fail(self, key: str, problem: str) -> ThemeFileError:
        line = self.lines.get(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ThemeFileError(f"{where}: key '{key}': {problem}")

    def read(self, data: dict[Any, Any]) -> Theme:
        fields: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in KEYS:
                raise self.fail(str(key), f"unknown key; allowed: {', '.join(KEYS)}")
            fields[key] = self.value(key, raw)
        for required in ("name", "primary"):
            if required not in fields:
                raise ThemeFileError(f"{self.path}: key '{required}' is required")
        theme = Theme(**fields)
        try:
            theme.to_color_system().generate()
        except (ColorParseError, ValueError) as exc:  # a combination Textual cannot derive colours from
            raise ThemeFileError(f"{self.path}: colours do not make a theme: {exc}") from exc
        return theme

    def value(self, key: str, raw: Any) -> Any:
        if key == "variables":
            return self.variables(raw)
        if key in ("dark", "ansi"):
            if not isinstance(raw, bool):
                raise self.fail(key, f"expected true or false, got {raw!r}")
            return raw
        if raw is None and key != "name":
            raise self.fail(key, "no value (quote colours that start with '#': \"#5f87d7\")")
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(key, f"expected text, got {raw!r}")
        if key == "name":
            if not _NAME.match(raw):
                raise self.fail(key, f"{raw!r} is not a name (letters, digits, '-' and '_')")
            return raw
        if not _is_colour(raw):
            raise self.fail(key, f"{raw!r} is not a colour (#rrggbb, rgb(...), a colour name or ansi_*)")
        return raw

    def variables(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise self.fail("variables", "expected a mapping of variable name to value")
        out: dict[str, str] = {}
        for name, value in raw.items():
            key = f"variables.{name}"
            if not isinstance(name, str) or not _VARIABLE.match(name):
                raise self.fail(key, "variable names are lower-case words joined by '-'")
            if not isinstance(value, str) or not _is_variable_value(value):
                raise self.fail(key, f"{value!r} is neither a colour (optionally 'NN%') nor a text style")
            out[name] = value
        return out


def _is_colour(value: str) -> bool:
    try:
        Color.parse(value)
    except ColorParseError:
        return False
    return True


def _is_variable_value(value: str) -> bool:
    words = value.split()
    if not words:
        return False
    if all(word in _TEXT_STYLES for word in words):
        return True
    return _is_colour(words[0]) and (len(words) == 1 or (len(words) == 2 and bool(_PERCENT.match(words[1]))))


def choose_theme(requested: str | None, available: set[str]) -> tuple[str, str | None]:
    """The theme to start with and, when the request cannot be honoured, why."""
    default = DEFAULT_THEME if DEFAULT_THEME in available else FALLBACK_THEME
    if requested is None or requested in available:
        return (requested or default), None
    names = ", ".join(sorted(name for name in available if name not in BUILTIN_THEMES)) or "none"
    return default, f"unknown theme '{requested}' (themes: {names}); using {default}"


def install_themes(
    app: App[Any], requested: str | None, directory: Path | None = None, cache: Path | None = None
) -> list[str]:
    """Register the theme files with the app and apply the requested theme; returns what went wrong.
    `cache`: see load_themes_cached.

    Called before the app mounts, so the first frame is styled once, in its final theme (setting
    the theme after mount restyles every widget a second time)."""
    problems: list[str] = []
    for theme in load_themes_cached(directory, problems, cache):
        app.register_theme(theme)
    name, note = choose_theme(requested, set(app.available_themes))
    app.theme = name
    return [*problems, *([note] if note else [])]


def follow_themes(app: App[Any], problems: list[str]) -> None:
    """Once mounted: keep NO_COLOR's filter right for every theme, and say what went wrong."""
    follow_no_color(app, app.current_theme)
    app.theme_changed_signal.subscribe(app, lambda theme: follow_no_color(app, theme), immediate=True)
    for problem in problems:
        app.notify(problem, title="theme", severity="warning", timeout=10, markup=False)


def follow_no_color(app: App[Any], theme: Theme) -> None:
    """Under NO_COLOR, the colour-removing filter Textual would have chosen for `theme` itself."""
    if not app.no_color:
        return
    filters = app._filters  # Textual keeps its line filters here; there is no public setter
    for index, line_filter in enumerate(filters):
        if isinstance(line_filter, Monochrome | NoColor):
            filters[index] = NoColor() if theme.ansi else Monochrome()


def file_themes(app: App[Any]) -> list[str]:
    """Names of the themes that came from files (Textual's own are not offered)."""
    return sorted(
        name for name, theme in app.available_themes.items() if BUILTIN_THEMES.get(name) is not theme
    )


def switch_theme(app: App[Any], name: str) -> None:
    """The command palette's theme switch."""
    if name not in app.available_themes:
        app.notify(f"unknown theme '{name}'", title="theme", severity="warning", markup=False)
        return
    app.theme = name
    app.notify(f"theme: {name}", timeout=3, markup=False)
