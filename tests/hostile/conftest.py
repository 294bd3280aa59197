"""The embedded platform fixtures, reused by the hostile-input tests."""
from tests.flows.conftest import client, platform  # noqa: F401
