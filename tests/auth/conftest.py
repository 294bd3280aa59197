"""The embedded platform fixtures of the flow tests, reused by the authorisation matrix."""

from tests.flows.conftest import client, platform  # noqa: F401
