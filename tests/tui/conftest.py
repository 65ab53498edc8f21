"""Fixtures for console tests: the integration fixtures (a real demo service on 127.0.0.1)."""

from tests.integration.conftest import service  # noqa: F401
