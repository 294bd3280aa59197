"""RabbitMQ bus: a durable topic exchange, one quorum queue per consumer, quorum TTL retry queues and a parking lot."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosedByBroker, ConsumerCancelled, NackError, UnroutableError
from pika.spec import Basic

from shared.bus.port import BusError, Handler, ParkedMessage, Unprocessable, parked_message
from shared.events import Envelope
from shared.metrics import EVENTS_PARKED, EVENTS_RETRIED, event_type_of

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-attempt"  # 1 on first delivery, +1 for each retry
ERROR_HEADER = "x-error"  # why the last attempt failed, on parked messages
_TRANSIENT = (AMQPError, OSError)
_POLL_S = 0.2
_BACKOFF_START_S, _BACKOFF_MAX_S = 0.5, 5.0
_STOP_GRACE_S = 30.0
_HEALTH_TIMEOUT_S = 3.0
_MAX_PEEK = 10_000


def backoff_queue(queue: str, delay_ms: int) -> str:
    """The quorum queue where a message for `queue` waits `delay_ms` before it is dead-lettered back."""
    return f"{queue}.backoff.{int(delay_ms)}"


def queue_names(queue: str, retry_delays_ms: Sequence[int]) -> list[str]:
    """Every queue a consumer queue brings: itself, its parking lot and one backoff queue per retry delay."""
    return [queue, _parking(queue), *(backoff_queue(queue, delay) for delay in retry_delays_ms)]


def _legacy_retry_queue(queue: str, delay_ms: int) -> str:
    """Before 0.2.1 the retry queues were classic: at-most-once dead-lettering, and on one node only."""
    return f"{queue}.retry.{int(delay_ms)}"


@dataclass
class _Subscription:
    queue: str
    patterns: tuple[str, ...]
    handler: Handler


class RabbitMQBus:
    """The MessageBus port on RabbitMQ, with the retry and parking semantics of InMemoryBus."""

    def __init__(
        self,
        *,
        url: str,
        exchange: str = "campaign.events",
        queue_prefix: str = "",
        prefetch: int = 16,
        retry_delays_ms: Sequence[int] = (1000, 5000, 30000),
        heartbeat_s: int = 60,
        connect_timeout_s: float = 30.0,
        delivery_limit: int = 10,
    ) -> None:
        self._url = url
        self._exchange = exchange
        self._prefix = queue_prefix
        self._prefetch = prefetch
        self._delays = tuple(int(ms) for ms in retry_delays_ms)
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._delivery_limit = delivery_limit
        self._lock = threading.RLock()
        self._subs: dict[str, _Subscription] = {}
        self._consumers: dict[str, _Consumer] = {}
        self._publishers: list[_Publisher] = []
        self._local = threading.local()
        self._declared_queues: set[str] = set()
        self._declared_exchange = False
        self._running = False

    # -- the port -------------------------------------------------------------------------------

    def publish(self, event: Envelope) -> None:
        """Publish persistently to the topic exchange; return once the broker confirmed it."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=event.event_id,
            headers={ATTEMPT_HEADER: 1},
        )
        self._publisher().publish(self._exchange, event.type, event.to_json(), properties)

    def subscribe(self, consumer: str, event_types: Sequence[str], handler: Handler) -> None:
        """Declare (or rebind) the consumer's quorum queue, its retry queues and its parking lot now."""
        patterns = tuple(event_types)
        with self._lock:
            existing = self._subs.get(consumer)
            stale = set(existing.patterns) - set(patterns) if existing else set()
            sub = existing or _Subscription(self._queue(consumer), patterns, handler)
        with self._admin_channel(f"subscribe {sub.queue}") as channel:
            self._declare_consumer(channel, sub.queue, patterns)
            for pattern in stale:
                channel.queue_unbind(sub.queue, self._exchange, routing_key=pattern)
        with self._lock:
            sub.patterns, sub.handler = patterns, handler
            self._subs[consumer] = sub
            if self._running:
                self._consumer(consumer).start()

    def start(self) -> None:
        """Start one consuming thread (with its own connection) per subscribed consumer."""
        with self._lock:
            self._running = True
            for name in self._subs:
                self._consumer(name).start()

    def stop(self) -> None:
        """Stop consuming, let in-flight handlers finish (bounded), close every connection."""
        with self._lock:
            self._running = False
            consumers = list(self._consumers.values())
            publishers = list(self._publishers)
        for consumer in consumers:
            consumer.request_stop()
        for consumer in consumers:
            consumer.join(_STOP_GRACE_S + 5)
        for publisher in publishers:
            publisher.close()

    def parked(self, consumer: str) -> list[Envelope]:
        """Events in the consumer's parking queue, peeked without removing them."""
        queue = _parking(self._queue(consumer))
        events: list[Envelope] = []
        with self._admin_channel(f"parked {queue}") as channel:
            # Unacked gets are returned to the queue when the channel closes, so this only peeks.
            for _ in range(_MAX_PEEK):
                try:
                    method, _properties, body = channel.basic_get(queue, auto_ack=False)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code == 404:  # never subscribed: nothing parked
                        return []
                    raise
                if method is None:
                    break
                try:
                    events.append(Envelope.from_json(body or b""))
                except ValueError:
                    log.warning(
                        "unparseable message in %s (message_id=%s)",
                        queue,
                        _properties and _properties.message_id,
                    )
        return events

    def queue_state(self, consumer: str) -> dict[str, int]:
        """Waiting and parked messages of a consumer's queues (0 for queues not declared yet)."""
        queue = self._queue(consumer)
        state: dict[str, int] = {}
        for key, name in (("ready", queue), ("parked", _parking(queue))):
            with self._admin_channel(f"depth of {name}") as channel:
                try:
                    state[key] = channel.queue_declare(name, passive=True).method.message_count
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
                    state[key] = 0
        return state

    def parked_messages(self, consumer: str, limit: int = 100) -> list[ParkedMessage]:
        """The consumer's parked messages with attempts and error, oldest first (peeked: returned on close)."""
        return [note for note, _tag in self._walk_parked(consumer, limit=limit, keep=lambda _note: False)]

    def replay_parked(self, consumer: str, message_id: str | None = None) -> int:
        """Republish parked messages (one, or all) to the consumer's own queue with x-attempt 1."""
        queue = self._queue(consumer)

        def replay(
            channel: BlockingChannel, note: ParkedMessage, body: bytes, properties: pika.BasicProperties
        ) -> None:
            headers = {
                k: v for k, v in (properties.headers or {}).items() if k not in (ERROR_HEADER, "x-death")
            }
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(
                    content_type=properties.content_type or "application/json",
                    delivery_mode=2,
                    message_id=properties.message_id,
                    headers={**headers, ATTEMPT_HEADER: 1},
                ),
                mandatory=True,
            )

        return len(self._walk_parked(consumer, keep=_chosen(message_id), act=replay))

    def purge_parked(self, consumer: str, message_id: str | None = None) -> list[ParkedMessage]:
        """Acknowledge (drop) parked messages, one or all; returns them."""
        return [
            note for note, _tag in self._walk_parked(consumer, keep=_chosen(message_id), act=lambda *_: None)
        ]

    def _walk_parked(
        self,
        consumer: str,
        *,
        keep: Callable[[ParkedMessage], bool],
        act: Callable[[BlockingChannel, ParkedMessage, bytes, pika.BasicProperties], None] | None = None,
        limit: int = _MAX_PEEK,
    ) -> list[tuple[ParkedMessage, int]]:
        """Get parked messages unacknowledged; act on (and ack) those `keep` picks; the rest return on close."""
        queue = _parking(self._queue(consumer))
        picked: list[tuple[ParkedMessage, int]] = []
        seen: list[tuple[ParkedMessage, int]] = []
        with self._admin_channel(f"parking lot {queue}") as channel:
            channel.confirm_delivery()
            for _ in range(limit):
                try:
                    method, properties, body = channel.basic_get(queue, auto_ack=False)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code == 404:  # never subscribed: nothing parked
                        return []
                    raise
                if method is None or properties is None or body is None or method.delivery_tag is None:
                    break
                headers = properties.headers or {}
                note = parked_message(
                    body,
                    message_id=properties.message_id,
                    attempts=_attempt(properties),
                    error=_text(headers.get(ERROR_HEADER)),
                )
                seen.append((note, method.delivery_tag))
                if act is not None and keep(note):
                    act(channel, note, body, properties)
                    channel.basic_ack(method.delivery_tag)
                    picked.append((note, method.delivery_tag))
        return picked if act is not None else seen

    def health(self) -> dict[str, Any]:
        """Broker reachability, queue depths and consumer connection states; never raises."""
        with self._lock:
            subs = dict(self._subs)
            consumers = {name: c.state() for name, c in self._consumers.items()}
        info: dict[str, Any] = {
            "backend": "rabbitmq",
            "ok": False,
            "running": self._running,
            "consumers": consumers,
        }
        try:
            connection = self._connect("health", _HEALTH_TIMEOUT_S)
            try:
                channel = connection.channel()
                info["queues"] = {
                    name: {
                        "ready": channel.queue_declare(sub.queue, passive=True).method.message_count,
                        "parked": channel.queue_declare(
                            _parking(sub.queue), passive=True
                        ).method.message_count,
                    }
                    for name, sub in subs.items()
                }
                info["ok"] = True
            finally:
                _close_quietly(connection)
        except Exception as exc:  # health must report, not raise
            info["error"] = repr(exc)
        return info

    def delete_topology(self) -> None:
        """Delete every queue and the exchange this instance declared (for tests; call after stop())."""
        with self._lock:
            queues, exchange = sorted(self._declared_queues), self._declared_exchange
        with self._admin_channel("delete topology") as channel:
            for queue in queues:
                channel.queue_delete(queue)
            if exchange:
                channel.exchange_delete(self._exchange)
        with self._lock:
            self._declared_queues.difference_update(queues)
            self._declared_exchange = False

    # -- topology and connections ---------------------------------------------------------------

    def _queue(self, consumer: str) -> str:
        return f"{self._prefix}{consumer}"

    def _consumer(self, name: str) -> _Consumer:
        consumer = self._consumers.get(name)
        if consumer is None:
            consumer = self._consumers[name] = _Consumer(self, self._subs[name])
        return consumer

    def _retry_queue(self, queue: str, attempt: int) -> str:
        return backoff_queue(queue, self._delays[attempt - 1])

    def _declare_exchange(self, channel: BlockingChannel) -> None:
        channel.exchange_declare(self._exchange, exchange_type="topic", durable=True)
        with self._lock:
            self._declared_exchange = True

    def main_queue_arguments(self, queue: str) -> dict[str, Any]:
        """A consumer's quorum queue: a message redelivered delivery_limit times (its consumer keeps crashing on it)
        is dead-lettered, at least once, into the parking lot instead of being dropped."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self._delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": _parking(queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
        }

    def _declare_main_queue(self, channel: BlockingChannel, queue: str) -> None:
        """Declare the main queue with its dead-lettering; a queue made by an older version keeps running as it is."""
        probe = channel.connection.channel()
        try:
            probe.queue_declare(queue, durable=True, arguments=self.main_queue_arguments(queue))
        except ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            # PRECONDITION_FAILED: the queue exists with other arguments (declared before dead-lettering existed).
            # Arguments of an existing queue cannot change; a policy can add them (docs/architecture.md, upgrade).
            log.error(
                "queue %s exists without dead-lettering into %s or a delivery limit (%s); it keeps working, but a "
                "message that keeps crashing its consumer is dropped after the broker's default limit. Apply the "
                "policy from docs/architecture.md (rabbitmqctl set_policy ... dead-letter-exchange, "
                "dead-letter-routing-key, delivery-limit) or drain and delete the queue so it is redeclared.",
                queue,
                _parking(queue),
                exc.reply_text,
            )
            channel.queue_declare(queue, passive=True)
        else:
            probe.close()

    def _declare_consumer(self, channel: BlockingChannel, queue: str, patterns: Sequence[str]) -> None:
        self._declare_exchange(channel)
        quorum = {"x-queue-type": "quorum"}
        declared = [queue, _parking(queue)]
        channel.queue_declare(_parking(queue), durable=True, arguments=quorum)
        self._declare_main_queue(channel, queue)
        for attempt in range(1, len(self._delays) + 1):
            retry = self._retry_queue(queue, attempt)
            channel.queue_declare(
                retry,
                durable=True,
                arguments={
                    # Quorum, not classic: replicated, and at-least-once dead-lettering. A classic queue
                    # dead-letters at most once, so a message expiring while the main queue has no leader
                    # (a node restarting) was dropped.
                    "x-queue-type": "quorum",
                    "x-message-ttl": self._delays[attempt - 1],
                    # Expired messages go back to the main queue through the default exchange.
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            declared.append(retry)
        for pattern in patterns:
            channel.queue_bind(queue, self._exchange, routing_key=pattern)
        with self._lock:
            self._declared_queues.update(declared)
        for delay in self._delays:
            self._retire_legacy_retry_queue(channel, _legacy_retry_queue(queue, delay))

    def _retire_legacy_retry_queue(self, channel: BlockingChannel, name: str) -> None:
        """Delete a retry queue of the classic kind once it is empty; until then it keeps draining into its
        main queue (its TTL still dead-letters there) and the next start tries again."""
        probe = channel.connection.channel()
        try:
            probe.queue_declare(name, passive=True)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return  # the usual case: nothing left from an older version
        try:
            probe.queue_delete(name, if_empty=True)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            log.warning(
                "classic retry queue %s from an older version still holds messages; it keeps dead-lettering "
                "them into its main queue and is deleted at a later start once empty",
                name,
            )
            return
        probe.close()
        log.info("deleted the empty classic retry queue %s (replaced by quorum backoff queues)", name)

    def _connect(self, role: str, timeout_s: float) -> BlockingConnection:
        """One connection attempt; raises pika's errors."""
        params = pika.URLParameters(self._url)
        params.heartbeat = self._heartbeat_s
        params.connection_attempts = 1
        params.socket_timeout = params.stack_timeout = max(timeout_s, 0.1)
        params.blocked_connection_timeout = self._connect_timeout_s
        params.client_properties = {"connection_name": f"campaign-bus {self._exchange} {role}"}
        return BlockingConnection(params)

    def _connect_within(self, role: str) -> BlockingConnection:
        """Connect, retrying with backoff for at most connect_timeout_s; raises BusError."""
        deadline = time.monotonic() + self._connect_timeout_s
        backoff = _BACKOFF_START_S
        while True:
            try:
                return self._connect(role, min(10.0, deadline - time.monotonic()))
            except _TRANSIENT as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BusError(f"RabbitMQ unreachable for {role}: {exc!r}") from exc
                log.warning("cannot connect to RabbitMQ for %s (%r); retrying", role, exc)
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    @contextmanager
    def _admin_channel(self, role: str) -> Iterator[BlockingChannel]:
        """A short-lived connection for declarations and peeks; pika errors become BusError."""
        connection = self._connect_within(role)
        try:
            yield connection.channel()
        except _TRANSIENT as exc:
            raise BusError(f"RabbitMQ {role} failed: {exc!r}") from exc
        finally:
            _close_quietly(connection)

    def _publisher(self) -> _Publisher:
        publisher = getattr(self._local, "publisher", None)
        if publisher is None:
            publisher = self._local.publisher = _Publisher(self)
            with self._lock:
                self._publishers.append(publisher)
        return publisher


class _Publisher:
    """One thread's confirmed publishing channel, reopened when the broker dropped it."""

    def __init__(self, bus: RabbitMQBus) -> None:
        self._bus = bus
        self._lock = threading.Lock()  # stop() closes it from another thread
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish with confirms, reconnecting once if the connection was lost; raises BusError."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._open_channel().basic_publish(exchange, routing_key, body, properties)
                    return
                except (NackError, UnroutableError) as exc:
                    raise BusError(f"broker refused {routing_key}: {exc!r}") from exc
                except _TRANSIENT as exc:
                    self._drop()
                    if attempt == 2:
                        raise BusError(f"publish of {routing_key} not confirmed: {exc!r}") from exc
                    log.info("publishing connection lost (%r); reconnecting", exc)

    def close(self) -> None:
        """Close the connection if open."""
        with self._lock:
            self._drop()

    def _open_channel(self) -> BlockingChannel:
        if self._connection is not None and self._connection.is_open:
            # Services heartbeats and surfaces a broker-side close before we publish into it.
            self._connection.process_data_events(time_limit=0)
        if (
            self._connection is None
            or not self._connection.is_open
            or not self._channel
            or not self._channel.is_open
        ):
            self._drop()
            self._connection = self._bus._connect_within(f"publisher {threading.current_thread().name}")
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            self._bus._declare_exchange(self._channel)
        return self._channel

    def _drop(self) -> None:
        if self._connection is not None:
            _close_quietly(self._connection)
        self._connection = self._channel = None


class _Consumer:
    """One consumer queue: a connection thread that owns pika, and a one-worker thread running the handler."""

    def __init__(self, bus: RabbitMQBus, sub: _Subscription) -> None:
        self._bus = bus
        self._sub = sub
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: set[Future[None]] = set()
        self.connected = False
        self.sessions = 0

    def start(self) -> None:
        """Start the connection thread unless it is running."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"bus-{self._sub.queue}", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Ask the connection thread to finish."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        """Wait for the connection thread to finish."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("consumer %s did not stop within %.0fs", self._sub.queue, timeout)
            else:
                self._thread = None

    def state(self) -> dict[str, Any]:
        """Connection state for health()."""
        return {"connected": self.connected, "sessions": self.sessions}

    def _run(self) -> None:
        backoff = _BACKOFF_START_S
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bus-{self._sub.queue}-handler")
        try:
            while not self._stop.is_set():
                sessions = self.sessions
                try:
                    self._session(worker)
                except _TRANSIENT as exc:
                    log.warning("consumer %s lost its connection (%r); reconnecting", self._sub.queue, exc)
                except Exception:
                    log.exception("consumer %s failed; reconnecting", self._sub.queue)
                if self.sessions > sessions:  # we got connected: start the backoff afresh
                    backoff = _BACKOFF_START_S
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        finally:
            # The session already waited (bounded) for the running handler; never block on a hung one.
            worker.shutdown(wait=False, cancel_futures=True)

    def _session(self, worker: ThreadPoolExecutor) -> None:
        """Connect, declare, consume until stop() or a connection error."""
        queue = self._sub.queue
        connection = self._bus._connect(f"consumer {queue}", self._bus._connect_timeout_s)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            self._bus._declare_consumer(channel, queue, self._sub.patterns)
            channel.basic_qos(prefetch_count=self._bus._prefetch)
            on_message = functools.partial(self._on_message, connection, worker)
            tag = channel.basic_consume(queue, on_message, auto_ack=False)
            self.sessions += 1
            self.connected = True
            log.info("consumer %s connected", queue)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=_POLL_S)
                if not channel.consumer_tags:
                    raise ConsumerCancelled(f"broker cancelled the consumer of {queue}")
            channel.basic_cancel(tag)
            self._drain(connection)
        finally:
            self.connected = False
            for future in list(self._inflight):
                future.cancel()  # not started: the broker redelivers it after the close
            _close_quietly(connection)

    def _drain(self, connection: BlockingConnection) -> None:
        """Let the running handler finish and its ack go out, within the grace period."""
        for future in list(self._inflight):
            future.cancel()
        deadline = time.monotonic() + _STOP_GRACE_S
        while any(not f.done() for f in list(self._inflight)) and time.monotonic() < deadline:
            connection.process_data_events(time_limit=_POLL_S)
        connection.process_data_events(time_limit=0)

    def _on_message(
        self,
        connection: BlockingConnection,
        worker: ThreadPoolExecutor,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        assert method.delivery_tag is not None  # a Basic.Deliver always carries its tag
        future = worker.submit(self._handle, connection, channel, method.delivery_tag, properties, body)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)

    def _handle(
        self,
        connection: BlockingConnection,
        channel: BlockingChannel,
        delivery_tag: int,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """Runs on the worker thread; the outcome is settled back on the connection thread."""
        attempt = _attempt(properties)
        error = None
        try:
            event = Envelope.from_json(body)
        except ValueError:
            outcome = "unparseable"
        else:
            try:
                self._sub.handler(event)
                outcome = "ok"
            except Unprocessable as exc:
                outcome, error = "unprocessable", f"{exc}"[:500]
            except Exception as exc:
                outcome, error = "failed", f"{type(exc).__name__}: {exc}"[:500]
                log.warning(
                    "handler %s failed on %s (attempt %d)",
                    self._sub.queue,
                    event.event_id,
                    attempt,
                    exc_info=True,
                )
        settle = functools.partial(
            self._settle, channel, delivery_tag, properties, body, outcome, attempt, error
        )
        try:
            connection.add_callback_threadsafe(settle)
        except AMQPError:
            log.warning(
                "consumer %s: connection closed before settling; the broker will redeliver", self._sub.queue
            )

    def _settle(
        self,
        channel: BlockingChannel,
        delivery_tag: int,
        properties: pika.BasicProperties,
        body: bytes,
        outcome: str,
        attempt: int,
        error: str | None = None,
    ) -> None:
        """Ack, or republish to the retry queue / parking lot and then ack (connection thread only)."""
        queue = self._sub.queue
        if outcome != "ok":
            if outcome == "failed" and attempt <= len(self._bus._delays):
                target, next_attempt = self._bus._retry_queue(queue, attempt), attempt + 1
                log.info("retrying %s on %s via %s", properties.message_id, queue, target)
                EVENTS_RETRIED.labels(queue, event_type_of(body)).inc()
            else:
                target, next_attempt = _parking(queue), attempt
                log.error(
                    "parking %s on %s (%s after %d attempts)", properties.message_id, queue, outcome, attempt
                )
                EVENTS_PARKED.labels(queue, event_type_of(body)).inc()
            copy = pika.BasicProperties(
                content_type=properties.content_type or "application/json",
                delivery_mode=2,
                message_id=properties.message_id,
                headers={
                    **(properties.headers or {}),
                    ATTEMPT_HEADER: next_attempt,
                    ERROR_HEADER: error or outcome,
                },
            )
            # mandatory: a missing retry/parking queue raises, the session restarts and redeclares it.
            channel.basic_publish("", target, body, copy, mandatory=True)
        channel.basic_ack(delivery_tag)


def _chosen(message_id: str | None) -> Callable[[ParkedMessage], bool]:
    return lambda note: message_id is None or note.message_id == message_id


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parking(queue: str) -> str:
    return f"{queue}.parking"


def _attempt(properties: pika.BasicProperties) -> int:
    try:
        value = (properties.headers or {}).get(ATTEMPT_HEADER, 1)
        return max(1, int(value)) if isinstance(value, int | str | bytes) else 1
    except (TypeError, ValueError):
        return 1


def _close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # already dead: nothing to release
        log.debug("error closing RabbitMQ connection", exc_info=True)
