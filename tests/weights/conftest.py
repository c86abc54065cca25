"""The weights tests share one HTTP server and a private cache (see ``server.py``)."""

import pytest

from tests.weights.server import home, server  # noqa: F401  (fixtures for every test here)


@pytest.fixture(autouse=True)
def _private_cache(home):  # noqa: F811
    """Every weights test runs on its own empty cache."""
    return home
