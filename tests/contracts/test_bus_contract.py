"""The MessageBus contract: every adapter (in-process and RabbitMQ) must pass the same suite."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from shared.bus.memory import InMemoryBus
from shared.events import Envelope

DELAYS = (100, 200)


def wait_until(predicate: Callable[[], object], timeout: float = 10) -> None:
    """Poll the predicate until it is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    assert predicate(), f"condition not met within {timeout}s"


def event(type: str = "submission.approved", **payload) -> Envelope:
    """A test event with Chinese text in its payload."""
    return Envelope(type=type, producer="contract-test", payload={"title": "安全生产宣传月活动", **payload})


class Recorder:
    """A handler that records every event it sees (thread-safe)."""

    def __init__(self, fail: Callable[[Envelope, int], bool] = lambda e, n: False) -> None:
        self.events: list[Envelope] = []
        self._fail = fail
        self._lock = threading.Lock()

    def __call__(self, event: Envelope) -> None:
        with self._lock:
            self.events.append(event)
            calls = self.calls(event.event_id)
        if self._fail(event, calls):
            raise RuntimeError(f"induced failure #{calls} for {event.event_id}")

    def calls(self, event_id: str) -> int:
        """How many times the handler saw this event."""
        return sum(1 for e in list(self.events) if e.event_id == event_id)

    def ids(self) -> set[str]:
        """The ids of every event seen."""
        return {e.event_id for e in list(self.events)}


@pytest.fixture
def rabbit_bus_factory(rabbitmq_url: str, run_name: str):
    """Makes RabbitMQBus instances sharing this test's names; stops them and deletes their topology."""
    from shared.bus.rabbitmq import RabbitMQBus

    made: list[RabbitMQBus] = []

    def make(**options) -> RabbitMQBus:
        options = {"retry_delays_ms": DELAYS, **options}
        bus = RabbitMQBus(
            url=rabbitmq_url, exchange=f"{run_name}.events", queue_prefix=f"{run_name}.", **options
        )
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.stop()
    for bus in made:
        bus.delete_topology()


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def backend(request) -> str:
    """Which adapter the contract runs against."""
    return request.param


@pytest.fixture
def bus_factory(backend: str, request):
    """Makes buses of the parametrized backend."""
    if backend == "rabbitmq":
        yield request.getfixturevalue("rabbit_bus_factory")
        return
    made: list[InMemoryBus] = []

    def make() -> InMemoryBus:
        made.append(InMemoryBus(retry_delays_ms=DELAYS))
        return made[-1]

    yield make
    for bus in made:
        bus.stop()


@pytest.fixture
def bus(bus_factory):
    """A fresh bus of the parametrized backend."""
    return bus_factory()


# -- the contract, for every adapter ------------------------------------------------------------


def test_published_event_reaches_the_handler_intact(bus):
    """A consumed event equals the published one, Chinese text included."""
    received = Recorder()
    bus.subscribe("review", ["submission.approved"], received)
    bus.start()
    sent = event(note="已通过审核 ✓")
    bus.publish(sent)

    wait_until(lambda: received.events)
    [got] = received.events
    assert got == sent
    assert got.payload == {"title": "安全生产宣传月活动", "note": "已通过审核 ✓"}


def test_topic_patterns_route_and_each_consumer_gets_a_copy(bus):
    """Routing follows topic patterns; every bound consumer gets its own copy."""
    submissions, evidence, also_submissions = Recorder(), Recorder(), Recorder()
    bus.subscribe("review", ["submission.*"], submissions)
    bus.subscribe("storage", ["evidence.*"], evidence)
    bus.subscribe("notification", ["submission.approved"], also_submissions)
    bus.start()
    stored, approved = event("evidence.stored"), event("submission.approved")
    bus.publish(stored)
    bus.publish(approved)

    wait_until(lambda: submissions.events and evidence.events and also_submissions.events)
    # evidence.stored was published first on the same queue order, so it would have arrived by now
    assert [e.event_id for e in submissions.events] == [approved.event_id]
    assert [e.event_id for e in also_submissions.events] == [approved.event_id]
    assert [e.event_id for e in evidence.events] == [stored.event_id]


def test_events_published_before_start_are_kept(bus):
    """subscribe() declares the queue, so events published before start() wait in it."""
    received = Recorder()
    bus.subscribe("review", ["submission.#"], received)
    early = [event("submission.approved"), event("submission.rejected.late")]
    for e in early:
        bus.publish(e)
    assert not received.events

    bus.start()
    wait_until(lambda: received.ids() == {e.event_id for e in early})


def test_failing_handler_is_retried_until_it_succeeds(bus):
    """Two failures then a success: three calls, nothing parked."""
    flaky = Recorder(fail=lambda e, calls: calls <= 2)
    bus.subscribe("review", ["submission.approved"], flaky)
    bus.start()
    sent = event()
    bus.publish(sent)

    wait_until(lambda: flaky.calls(sent.event_id) >= 3)
    assert all(e == sent for e in flaky.events)
    assert bus.parked("review") == []
    time.sleep(0.5)  # longer than every retry delay: a 4th attempt would have happened
    assert flaky.calls(sent.event_id) == 3


def test_poison_event_is_parked_while_the_queue_keeps_flowing(bus):
    """An always-failing event is tried 1+len(delays) times then parked; later events still flow."""
    poison = event(poison=True)
    handler = Recorder(fail=lambda e, calls: e.event_id == poison.event_id)
    bus.subscribe("review", ["submission.approved"], handler)
    bus.start()
    bus.publish(poison)
    healthy = [event(n=n) for n in range(3)]
    for e in healthy:
        bus.publish(e)

    wait_until(lambda: {e.event_id for e in healthy} <= handler.ids())
    wait_until(lambda: poison.event_id in {e.event_id for e in bus.parked("review")})
    assert handler.calls(poison.event_id) == 1 + len(DELAYS)
    assert [e.event_id for e in bus.parked("review")] == [poison.event_id]  # peeking removed nothing
    assert all(handler.calls(e.event_id) == 1 for e in healthy)


def test_an_unprocessable_event_is_parked_at_once(bus):
    """A handler raising Unprocessable (unknown type, malformed payload) parks the event without retries."""
    from shared.bus.port import Unprocessable

    strange = event(strange=True)
    seen: list[str] = []

    def handler(e: Envelope) -> None:
        seen.append(e.event_id)
        if e.event_id == strange.event_id:
            raise Unprocessable("unknown")

    bus.subscribe("review", ["submission.approved"], handler)
    bus.start()
    bus.publish(strange)
    after = event(n=1)
    bus.publish(after)
    wait_until(lambda: [e.event_id for e in bus.parked("review")] == [strange.event_id])
    wait_until(lambda: after.event_id in seen)
    time.sleep(0.5)  # longer than every retry delay: a retry would have happened
    assert seen.count(strange.event_id) == 1


def test_events_published_while_stopped_are_delivered_after_restart(bus, bus_factory, backend):
    """Events published while the worker is down are delivered once it restarts."""
    first = Recorder()
    bus.subscribe("review", ["submission.approved"], first)
    bus.start()
    before = event()
    bus.publish(before)
    wait_until(lambda: first.events)
    bus.stop()

    # a restarted worker is a new process: a new adapter instance with the same names
    restarted = bus_factory() if backend == "rabbitmq" else bus
    second = Recorder()
    restarted.subscribe("review", ["submission.approved"], second)
    while_stopped = event()
    restarted.publish(while_stopped)
    time.sleep(0.3)
    assert not second.events and first.ids() == {before.event_id}

    restarted.start()
    wait_until(lambda: second.events)
    assert second.ids() == {while_stopped.event_id}
    assert first.ids() == {before.event_id}


def test_health_reports_the_backend(bus):
    """health() names the backend and reports ok."""
    bus.subscribe("review", ["submission.approved"], Recorder())
    health = bus.health()
    assert health["ok"] is True
    assert health["backend"] in {"memory", "rabbitmq"}


# -- RabbitMQ only: connection failures -----------------------------------------------------------


def _close_connections_named(fragment: str) -> int:
    """Close, from the broker side, every connection whose client name contains fragment."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not on PATH (broker not local)")
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if fragment in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test"], check=True, timeout=30)
    return len(pids)


@pytest.mark.rabbitmq
def test_rabbitmq_consumer_and_publisher_reconnect_after_broker_closes_them(rabbit_bus_factory, run_name):
    """Connections closed by the broker come back on their own, for consuming and publishing."""
    bus = rabbit_bus_factory()
    received = Recorder()
    bus.subscribe("review", ["submission.approved"], received)
    bus.start()
    first = event()
    bus.publish(first)
    wait_until(lambda: received.events)

    assert _close_connections_named(run_name) >= 2  # the consumer's and this thread's publisher
    wait_until(lambda: bus.health()["consumers"]["review"]["sessions"] >= 2)
    second = event()
    bus.publish(second)  # the publisher finds its connection dead and reconnects
    wait_until(lambda: second.event_id in received.ids())
    assert received.calls(first.event_id) == 1


@pytest.mark.rabbitmq
def test_rabbitmq_slow_handler_keeps_its_connection_and_is_acked_once(rabbit_bus_factory):
    """A handler slower than the heartbeat timeout neither loses the connection nor gets redelivered."""
    bus = rabbit_bus_factory(heartbeat_s=1)
    finished = threading.Event()
    calls: list[str] = []

    def slow(e: Envelope) -> None:
        calls.append(e.event_id)
        time.sleep(4)  # well past two missed 1s heartbeats if the connection thread were blocked
        finished.set()

    bus.subscribe("review", ["submission.approved"], slow)
    bus.start()
    sent = event()
    bus.publish(sent)

    assert finished.wait(15)
    time.sleep(1.5)  # a lost connection would have redelivered the unacked message by now
    assert bus.health()["consumers"]["review"] == {"connected": True, "sessions": 1}
    bus.stop()  # an unacked message would go back to ready when the consumer connection closes
    assert calls == [sent.event_id]
    assert bus.health()["queues"]["review"] == {"ready": 0, "parked": 0}


@pytest.mark.rabbitmq
def test_rabbitmq_unparseable_message_goes_straight_to_parking(rabbit_bus_factory, rabbitmq_url, run_name):
    """A body that is not an Envelope is parked at once, without calling the handler."""
    import pika

    bus = rabbit_bus_factory()
    received = Recorder()
    bus.subscribe("review", ["submission.approved"], received)
    bus.start()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        connection.channel().basic_publish(f"{run_name}.events", "submission.approved", b"\xff not json")
    finally:
        connection.close()
    good = event()
    bus.publish(good)

    wait_until(lambda: bus.health()["queues"]["review"]["parked"] == 1)
    assert received.ids() == {good.event_id}  # the handler never saw the garbage
    assert bus.parked("review") == []  # not an Envelope, so not listed, but kept in the queue
    assert bus.health()["queues"]["review"]["parked"] == 1


def test_rabbitmq_unreachable_broker_raises_bus_error_and_reports_unhealthy():
    """No broker: publish() raises BusError after the bounded wait and health() says not ok (no broker needed)."""
    from shared.bus.port import BusError
    from shared.bus.rabbitmq import RabbitMQBus

    bus = RabbitMQBus(url="amqp://guest:guest@127.0.0.1:1/%2F", connect_timeout_s=1)
    with pytest.raises(BusError):
        bus.publish(event())
    health = bus.health()
    assert health["backend"] == "rabbitmq" and health["ok"] is False and "error" in health


def test_parked_messages_are_listed_with_their_error_replayed_and_purged(bus):
    """An operator sees why an event was parked, replays it from attempt one (it then succeeds), and purges another."""
    healed = threading.Event()
    recorder = Recorder(fail=lambda e, n: e.payload.get("poison") == "forever" or not healed.is_set())
    bus.subscribe("review", ["submission.*"], recorder)
    bus.start()
    fixable, hopeless = event(poison="until-fixed"), event(poison="forever")
    bus.publish(fixable)
    bus.publish(hopeless)
    wait_until(lambda: bus.queue_state("review")["parked"] == 2)
    parked = {m.message_id: m for m in bus.parked_messages("review")}
    assert set(parked) == {fixable.event_id, hopeless.event_id}
    assert parked[fixable.event_id].type == "submission.approved"
    assert parked[fixable.event_id].attempts == 1 + len(DELAYS)
    assert "induced failure" in parked[fixable.event_id].error
    assert fixable.event_id in parked[fixable.event_id].body
    assert bus.queue_state("review")["parked"] == 2  # listing removed nothing

    healed.set()
    calls = recorder.calls(fixable.event_id)
    assert bus.replay_parked("review", fixable.event_id) == 1
    wait_until(lambda: recorder.calls(fixable.event_id) == calls + 1)
    wait_until(lambda: bus.queue_state("review") == {"ready": 0, "parked": 1})
    assert [m.message_id for m in bus.parked_messages("review")] == [hopeless.event_id]

    purged = bus.purge_parked("review", hopeless.event_id)
    assert [m.message_id for m in purged] == [hopeless.event_id]
    assert bus.parked_messages("review") == [] and bus.queue_state("review")["parked"] == 0
    assert bus.replay_parked("review") == 0 and bus.purge_parked("nobody") == []


@pytest.mark.rabbitmq
def test_rabbitmq_main_queue_dead_letters_into_the_parking_lot_after_its_delivery_limit(
    rabbit_bus_factory, rabbitmq_url, run_name
):
    """A message whose consumer dies on it again and again (requeued without an ack) is parked, not dropped."""
    import pika

    bus = rabbit_bus_factory(delivery_limit=2)
    bus.subscribe(
        "review", ["submission.approved"], Recorder()
    )  # declares the queues; the bus never consumes here
    crashing = event(crash=True)
    bus.publish(crashing)
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        for _ in range(10):  # a consumer that crashes before acking: the broker requeues, counting deliveries
            method, _props, _body = channel.basic_get(f"{run_name}.review", auto_ack=False)
            if method is None:
                break
            channel.basic_nack(method.delivery_tag, requeue=True)
        arguments = channel.queue_declare(f"{run_name}.review", passive=True)
    finally:
        connection.close()
    assert arguments.method.message_count == 0
    wait_until(lambda: [e.event_id for e in bus.parked("review")] == [crashing.event_id])


@pytest.mark.rabbitmq
def test_rabbitmq_queue_from_an_older_version_keeps_working_without_its_new_arguments(
    rabbit_bus_factory, rabbitmq_url, run_name, caplog
):
    """Redeclaring an existing queue with new arguments fails with PRECONDITION_FAILED: the bus logs what to do
    and consumes from the queue as it is."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        connection.channel().queue_declare(
            f"{run_name}.review", durable=True, arguments={"x-queue-type": "quorum"}
        )
    finally:
        connection.close()
    bus = rabbit_bus_factory()
    received = Recorder()
    bus.subscribe("review", ["submission.approved"], received)
    bus.start()
    sent = event()
    bus.publish(sent)
    wait_until(lambda: received.ids() == {sent.event_id})
    assert "exists without dead-lettering" in caplog.text


@pytest.mark.rabbitmq
def test_rabbitmq_classic_retry_queues_from_an_older_version_drain_into_quorum_backoff_queues(
    rabbit_bus_factory, rabbitmq_url, run_name, caplog
):
    """Before 0.2.1 retry queues were classic (dead-lettering at most once, on one node). A start deletes the
    empty ones, leaves one still holding a message to dead-letter it into the main queue, and waits in quorum
    backoff queues from then on."""
    import pika
    from pika.exceptions import ChannelClosedByBroker

    from shared.bus.rabbitmq import backoff_queue
    from tests.services import delete_rabbitmq_objects

    queue = f"{run_name}.review"
    empty, holding = f"{queue}.retry.{DELAYS[0]}", f"{queue}.retry.{DELAYS[1]}"
    waiting = event()
    # The held message dead-letters into the main queue when its TTL runs out; the bus must have declared that
    # queue by then, or the broker drops it. 3 s was too short for a start on a busy machine (seen once).
    held_ms = 8000
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = connection.channel()
        for name, ttl in ((empty, DELAYS[0]), (holding, held_ms)):
            channel.queue_declare(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "classic",
                    "x-message-ttl": ttl,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )
        channel.basic_publish("", holding, waiting.to_json(), pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()
    try:
        bus = rabbit_bus_factory()
        received = Recorder()
        bus.subscribe("review", ["submission.approved"], received)
        bus.start()
        wait_until(lambda: received.ids() == {waiting.event_id}, timeout=held_ms / 1000 + 15)  # dead-lettered
        assert f"classic retry queue {holding} from an older version still holds messages" in caplog.text
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        try:
            with pytest.raises(ChannelClosedByBroker) as gone:
                connection.channel().queue_declare(empty, passive=True)
            assert gone.value.reply_code == 404
            for delay in DELAYS:  # redeclaring a quorum queue as classic is refused
                with pytest.raises(ChannelClosedByBroker) as refused:
                    connection.channel().queue_declare(
                        backoff_queue(queue, delay), durable=True, arguments={"x-queue-type": "classic"}
                    )
                assert refused.value.reply_code == 406
        finally:
            connection.close()
    finally:
        delete_rabbitmq_objects(rabbitmq_url, queues=[empty, holding], exchanges=[])
