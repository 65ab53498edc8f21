"""Fixtures shared across test directories, registered once here so each real server they start is
started once per session however many directories use it (a fixture imported into two conftest
files is two fixtures, and would start two servers)."""

pytest_plugins = ["tests.pg.server", "tests.prom.server"]
