"""A message waiting out a retry delay survives a broker restart during the wait. The retry queues used to be
classic, and a classic queue dead-letters at most once: on RabbitMQ 3.10 every message whose delay ran out while
the node was down was dropped at its restart (200 of 200 in the experiment in docs/architecture.md). The quorum
backoff queues dead-letter at least once."""

from __future__ import annotations

import time

import pytest

from tests.faults import rabbit_node

pytestmark = [pytest.mark.fault, pytest.mark.rabbitmq, pytest.mark.timeout(300)]
WAITING = 50
DELAY_MS = 2000


def test_messages_waiting_in_a_backoff_queue_reach_their_consumer_after_a_node_restart():
    import pika

    from shared.bus.rabbitmq import RabbitMQBus, backoff_queue
    from shared.events import Envelope
    from tests.services import need

    reason = rabbit_node.available()
    need(f"a dedicated RabbitMQ node ({reason})", reason is None)
    node = rabbit_node.RabbitNode()
    try:
        node.start()
        bus = RabbitMQBus(url=node.url, exchange="backoff.events", retry_delays_ms=(DELAY_MS,))
        bus.subscribe("review", ["submission.approved"], lambda event: None)  # declares the queues only
        waiting = [
            Envelope(type="submission.approved", producer="fault-test", payload={"n": n})
            for n in range(WAITING)
        ]
        connection = pika.BlockingConnection(pika.URLParameters(node.url))
        channel = connection.channel()
        channel.confirm_delivery()
        for (
            envelope
        ) in waiting:  # what a consumer does with a failed message: republish it to wait, confirmed
            channel.basic_publish(
                "",
                backoff_queue("review", DELAY_MS),
                envelope.to_json(),
                pika.BasicProperties(delivery_mode=2, message_id=envelope.event_id),
                mandatory=True,
            )
        connection.close()

        node.stop()
        time.sleep(DELAY_MS / 1000 + 2)  # every delay runs out while the node is down
        node.start()

        received: set[str] = set()
        deadline = time.monotonic() + 60
        connection = pika.BlockingConnection(pika.URLParameters(node.url))
        try:
            channel = connection.channel()
            while len(received) < WAITING and time.monotonic() < deadline:
                method, _properties, body = channel.basic_get("review", auto_ack=True)
                if method is None:
                    time.sleep(0.2)
                    continue
                received.add(Envelope.from_json(body).event_id)
        finally:
            connection.close()
        assert received == {envelope.event_id for envelope in waiting}
    finally:
        node.remove()
