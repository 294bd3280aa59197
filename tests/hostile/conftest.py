"""The embedded platform fixtures, reused by the hostile-input tests."""

from tests.console.conftest import browser  # noqa: F401
from tests.flows.conftest import client, platform  # noqa: F401
