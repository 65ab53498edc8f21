"""opsconsole: terminal operations console for safe phased rollouts."""

__version__ = "0.1.0"
