"""The fault suite's world: one distributed platform per module, on a RabbitMQ node of its own."""

from __future__ import annotations

import pytest

from tests.faults import rabbit_node
from tests.services import POSTGRES_URL, fresh_postgres_database, need, port_open


@pytest.fixture(scope="module")
def fault_world(tmp_path_factory):
    """Eight processes on a dedicated RabbitMQ node, a fresh PostgreSQL database, S3 and SMTP behind fault proxies."""
    from tests.faults.harness import FaultWorld

    reason = rabbit_node.available()
    need(f"a dedicated RabbitMQ node ({reason})" if reason else "RabbitMQ", reason is None)
    need("PostgreSQL", port_open(POSTGRES_URL, 5432))
    with (
        fresh_postgres_database() as url,
        FaultWorld(tmp_path_factory.mktemp("faults"), postgres_url=url) as world,
    ):
        yield world
