"""Delivery guarantees: the transactional outbox with its relay, and the idempotent-consumer inbox."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, NoReturn, cast

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from shared.background import BackgroundLoop
from shared.bus.port import MessageBus, SettlingBus, Unprocessable
from shared.db import Database, after_commit, rows_affected
from shared.events import Envelope
from shared.logs import log_context
from shared.metrics import (
    EVENTS_CONSUMED,
    EVENTS_DUPLICATE,
    EVENTS_FAILED,
    EVENTS_PUBLISHED,
    EVENTS_UNPROCESSABLE,
    HANDLER_DURATION,
    PUBLISH_FAILED,
)
from shared.tracing import span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessagingTables:
    """The outbox and inbox tables of one service."""

    outbox: Table
    inbox: Table


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Declare the outbox and inbox tables on a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("type", String(128), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("type", String(128), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)


class OutboxRow(NamedTuple):
    """An event a committed transaction added to its service's outbox, with the row that holds it."""

    row_id: int
    event: Envelope


_ADDED = "outbox_added"  # session.info key: the rows this transaction added, by outbox table
_ANNOUNCED = "outbox_announced"  # session.info key: in_transaction ran in this transaction, by outbox table


class Outbox:
    """Adds outgoing events to the caller's transaction."""

    def __init__(
        self,
        table: Table,
        *,
        on_commit: Callable[[Sequence[OutboxRow]], None] | None = None,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> None:
        self._table = table
        # Built once: a statement built per event with .values() costs a fresh cache key every time.
        self._insert = insert(table)
        # Called once after a commit that added events, with those rows (the process's relays take or wake),
        # so no use case has to remember to, and a transaction that added none wakes nobody. An empty list
        # means events were committed but which is not certain: read the table.
        self._on_commit = on_commit
        # Called inside the transaction at its first event (an API's NOTIFY on PostgreSQL, which PostgreSQL
        # sends only if the transaction commits): one more statement instead of a transaction of its own.
        self._in_transaction = in_transaction

    def add(self, session: Session, event: Envelope) -> None:
        """Record an event to publish once the surrounding transaction (a Database.transaction()) commits."""
        if self._in_transaction is not None:
            self._announce(session)
        result = session.execute(
            self._insert,
            {
                "event_id": event.event_id,
                "type": event.type,
                "body": event.to_json().decode("utf-8"),
                "created_at": datetime.now(UTC),
                "attempts": 0,
            },
        )
        if self._on_commit is not None:
            self._remember(session, cast(CursorResult[Any], result), event)

    def _announce(self, session: Session) -> None:
        assert self._in_transaction is not None
        key = (_ANNOUNCED, self._table.name)
        if session.info.get(key):
            return
        self._in_transaction(session)
        # Inside a savepoint its rollback would undo the announcement too: announce again at the next event.
        if not session.in_nested_transaction():
            session.info[key] = True

    def _remember(self, session: Session, result: CursorResult[Any], event: Envelope) -> None:
        key = (_ADDED, self._table.name)
        added = session.info.get(key)
        if added is None:
            added = session.info[key] = []
            after_commit(session, functools.partial(self._committed, added))
        key_of_row = result.inserted_primary_key
        row_id = key_of_row[0] if key_of_row else None
        if session.in_nested_transaction() or row_id is None:
            # a savepoint may still roll its rows back (or the driver did not say which row): nobody is told which
            added.append(None)
        else:
            added.append(OutboxRow(int(row_id), event))

    def _committed(self, added: list[OutboxRow | None]) -> None:
        assert self._on_commit is not None
        self._on_commit([] if None in added else cast(list[OutboxRow], added))

    def pending(self, session: Session) -> int:
        """How many events wait to be published."""
        return len(
            session.execute(select(self._table.c.id).where(self._table.c.published_at.is_(None))).all()
        )


class OutboxRelay:
    """Publishes committed outbox rows with confirms and marks them sent; safe with several replicas.

    On the in-process bus (embedded mode) a row is marked published only once every in-process consumer has
    committed (or parked) the event, so a `kill -9` loses nothing: a restart hands the unmarked rows over again
    and the consumers' inboxes absorb what they had already processed. A parked event stays unmarked (with
    `last_error`) and is delivered again at the next start. There the events a commit added are handed over
    by `committed` right after it, on the committing thread; the loop reads the table only for what that
    missed (rows committed before the start, or added inside a savepoint) and marks what was settled.
    """

    def __init__(
        self,
        *,
        db: Database,
        table: Table,
        bus: MessageBus,
        poll_s: float = 0.5,
        batch: int = 100,
        in_process: bool = False,
        service: str = "",
    ) -> None:
        self._db, self._table, self._bus = db, table, bus
        self._service = service or db.schema
        self._batch = batch
        # One relay per outbox on the in-process bus (the embedded mode): rows are not locked while handed over.
        self._in_process = in_process and bool(getattr(bus, "settles_in_process", False))
        self._handed_over: set[int] = set()  # in-process: rows given to the bus and not yet marked
        self._handing = threading.Lock()  # in-process: committing threads and the loop hand rows over
        self._accepting = False  # in-process: between start and stop, when every consumer's queue is declared
        self._settled: list[tuple[int, bool]] = []
        self._settled_lock = threading.Lock()
        # A full batch means more rows are waiting: relay again at once instead of after the poll.
        self._loop = BackgroundLoop("outbox-relay", poll_s, lambda: self.relay_once() >= self._batch)
        t = table
        # Built once: the relay runs after every commit that wrote events, and building the statement cost about
        # as much as running it (bench/pipeline profiles).
        self._pending = select(t.c.id, t.c.body).where(t.c.published_at.is_(None)).order_by(t.c.id)
        self._locked_batch = self._pending.limit(batch).with_for_update(skip_locked=True)
        self._pending_up_to = self._pending.limit(bindparam("up_to"))
        ids = t.c.id.in_(bindparam("ids", expanding=True))
        self._mark_published = (
            update(t).where(ids).values(published_at=bindparam("at"), attempts=t.c.attempts + 1)
        )
        self._mark_failed = (
            update(t).where(ids).values(attempts=t.c.attempts + 1, last_error=bindparam("error"))
        )

    def relay_once(self) -> int:
        """Publish one batch of pending events in order; return how many were published."""
        if self._in_process:
            return self._hand_over_once()
        published: list[int] = []
        with self._db.transaction() as session:
            for row in session.execute(self._locked_batch).all():
                try:
                    self._bus.publish(Envelope.from_json(row.body))
                except Exception as exc:
                    log.warning("outbox relay: publish failed, will retry: %s", exc)
                    PUBLISH_FAILED.labels(self._service).inc()
                    session.execute(self._mark_failed, {"ids": [row.id], "error": str(exc)[:500]})
                    break
                published.append(row.id)
            if published:  # one statement for the batch; a crash before the commit publishes them all again
                session.execute(self._mark_published, {"ids": published, "at": datetime.now(UTC)})
        if published:
            EVENTS_PUBLISHED.labels(self._service).inc(len(published))
        return len(published)

    def _hand_over_once(self) -> int:
        """In-process bus: mark what the consumers settled and read the rows not handed over yet, in one
        transaction; then hand those rows over."""
        with self._settling() as session:
            rows = session.execute(self._pending_up_to, {"up_to": self._batch + len(self._handed_over)}).all()
        with self._handing:
            fresh = [row for row in rows if row.id not in self._handed_over][: self._batch]
            for row in fresh:
                self._publish_settling(row.id, Envelope.from_json(row.body))
        return len(fresh)

    def committed(self, added: Sequence[OutboxRow]) -> None:
        """After a commit that added events: in-process, hand them to the bus now; otherwise (or when which rows
        is not certain) wake the loop to read them from the table.

        A row the loop also read meanwhile is handed over once. Should this thread run only after the loop had
        handed the row over, seen it settled and marked it, the event goes out twice and the inboxes absorb it.
        """
        if not (self._in_process and self._accepting and added):
            self._loop.wake()
            return
        with self._handing:
            for row in added:
                if row.row_id not in self._handed_over:
                    self._publish_settling(row.row_id, row.event)

    def _publish_settling(self, row_id: int, event: Envelope) -> None:
        self._handed_over.add(row_id)
        bus = cast(SettlingBus, self._bus)
        bus.publish(event, on_settled=functools.partial(self._on_settled, row_id))

    def _on_settled(self, row_id: int, parked: bool) -> None:
        # Marking waits for the next hand-over or poll (at most poll_s): one write then marks many settlements,
        # where a wake per settlement cost a transaction per event. Until marked, a crash hands the row over
        # again and the consumers' inboxes absorb it.
        with self._settled_lock:
            self._settled.append((row_id, parked))
            many = len(self._settled) >= self._batch
        if many:
            self._loop.wake()

    @contextmanager
    def _settling(self) -> Iterator[Session]:
        """A session that first marks the events settled since the last step (a transaction when there are
        any); if it fails, they are marked at the next step."""
        with self._settled_lock:
            settled, self._settled = self._settled, []
        done = [row_id for row_id, parked in settled if not parked]
        parked = [row_id for row_id, was_parked in settled if was_parked]
        try:
            with self._db.transaction() if settled else self._db.session() as session:
                if done:
                    session.execute(self._mark_published, {"ids": done, "at": datetime.now(UTC)})
                if parked:
                    session.execute(
                        self._mark_failed,
                        {
                            "ids": parked,
                            "error": "parked by an in-process consumer; delivered again at restart",
                        },
                    )
                yield session
        except Exception:
            with self._settled_lock:
                self._settled[:0] = settled
            raise
        with self._handing:  # parked rows stay handed over until the process restarts
            self._handed_over.difference_update(done)

    def wake(self) -> None:
        """Ask the relay to look for new rows now instead of at the next poll."""
        self._loop.wake()

    def loop_state(self, stall_s: float) -> dict[str, Any]:
        """The relay thread's state for /livez."""
        return self._loop.state(stall_s)

    def start(self) -> None:
        """Run the relay loop on a background thread (in-process: and take committed rows from now on)."""
        self._accepting = True
        self._loop.start()

    def stop(self) -> None:
        """Stop the loop after its current batch (in-process: and mark what was settled meanwhile)."""
        self._accepting = False
        self._loop.stop()
        if self._in_process:
            try:
                with self._settling():
                    pass
            except Exception:  # the next start delivers those rows again; the inboxes absorb them
                log.warning("outbox relay: could not mark settled events at stop", exc_info=True)


class Inbox:
    """Remembers which events each consumer has processed, inside the consumer's transaction."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._insert = _insert_unless_present(table)

    def first_time(self, session: Session, consumer: str, event: Envelope) -> bool:
        """Record the event for the consumer; False if it was processed before."""
        row = dict(
            consumer=consumer, event_id=event.event_id, type=event.type, processed_at=datetime.now(UTC)
        )
        return session.execute(self._insert, row).first() is not None


def _insert_unless_present(table: Table) -> ReturningInsert[tuple[str]]:
    """INSERT … SELECT … WHERE NOT EXISTS, RETURNING the event id: one round trip, and a plain Core statement that
    SQLAlchemy compiles once (its dialects' ON CONFLICT inserts are never cached: they were compiled for every
    consumed event, a tenth of the embedded process's time). A replica inserting the same event at the same moment
    waits for the other's transaction and then fails on the key; IdempotentConsumer takes that as a duplicate."""
    columns = ("consumer", "event_id", "type", "processed_at")
    given = {name: bindparam(name, type_=table.c[name].type) for name in columns}
    present = exists().where(table.c.consumer == given["consumer"], table.c.event_id == given["event_id"])
    return (
        insert(table)
        .from_select(list(columns), select(*given.values()).where(~present))
        .returning(table.c.event_id)
    )


EventHandler = Callable[..., None]


class IdempotentConsumer:
    """Runs a service's handlers for an event in one transaction with its inbox record."""

    def __init__(
        self,
        *,
        name: str,
        db: Database,
        inbox: Inbox,
        subscriptions: Mapping[str, Sequence[EventHandler]],
        dependencies: Mapping[str, object],
        ignored_types: Iterable[str] = (),
    ) -> None:
        self.name = name
        self._db, self._inbox = db, inbox
        self._subscriptions = subscriptions
        self._deps = dict(dependencies)
        self._ignored = frozenset(ignored_types)
        self.unprocessable: Counter[str] = (
            Counter()
        )  # event type -> how many were parked as unknown or malformed

    @property
    def event_types(self) -> list[str]:
        """The routing keys this consumer binds."""
        return list(self._subscriptions)

    def __call__(self, event: Envelope) -> None:
        """Handle an event once; a duplicate is acknowledged without effect; an unknown or malformed one is parked."""
        handlers = self._subscriptions.get(event.type, ())
        # Every log line and every event made while handling carries this event as its cause (shared/logs.py).
        with (
            log_context(
                service=self.name,
                consumer=self.name,
                event_id=event.event_id,
                event_type=event.type,
                correlation_id=event.correlation_id or event.event_id,
                causation_id=event.causation_id,
            ),
            span(
                f"consume {event.type}",
                parent=event.trace,
                kind="consumer",
                consumer=self.name,
                event_id=event.event_id,
                correlation_id=event.correlation_id,
            ),
        ):
            if not handlers:
                if event.type in self._ignored:
                    return
                self._unprocessable(event, "unknown event type")
            started = time.perf_counter()
            try:
                with self._db.transaction() as session:
                    if not self._inbox.first_time(session, self.name, event):
                        log.info("%s: duplicate event %s ignored", self.name, event.event_id)
                        EVENTS_DUPLICATE.labels(self.name, event.type).inc()
                        return
                    for handler in handlers:
                        handler(event, uow=session, **self._deps)
            except ValidationError as exc:  # the payload does not match its contract: retrying cannot help
                EVENTS_FAILED.labels(self.name, event.type).inc()
                self._unprocessable(
                    event, f"malformed payload: {exc.error_count()} error(s): {str(exc)[:300]}"
                )
            except IntegrityError:
                if self._already_processed(event):
                    log.info("%s: event %s processed concurrently elsewhere", self.name, event.event_id)
                    EVENTS_DUPLICATE.labels(self.name, event.type).inc()
                    return
                EVENTS_FAILED.labels(self.name, event.type).inc()
                raise
            except Exception:
                EVENTS_FAILED.labels(self.name, event.type).inc()
                log.warning(
                    "%s: handling %s failed; the bus retries or parks it",
                    self.name,
                    event.type,
                    exc_info=True,
                )
                raise
            HANDLER_DURATION.labels(self.name, event.type).observe(time.perf_counter() - started)
            EVENTS_CONSUMED.labels(self.name, event.type).inc()
            log.info("%s: handled %s", self.name, event.type)

    def _unprocessable(self, event: Envelope, why: str) -> NoReturn:
        self.unprocessable[event.type] += 1
        EVENTS_UNPROCESSABLE.labels(self.name, event.type[:128]).inc()
        log.error(
            "%s: %s, parking event %s of type %r (producer %s); %d such event(s) of this type so far",
            self.name,
            why,
            event.event_id,
            event.type,
            event.producer,
            self.unprocessable[event.type],
        )
        raise Unprocessable(f"{self.name}: {why}: {event.type} {event.event_id}")

    def _already_processed(self, event: Envelope) -> bool:
        with self._db.transaction() as session:
            t = self._inbox._table
            return (
                session.execute(
                    select(t.c.event_id).where(t.c.consumer == self.name, t.c.event_id == event.event_id)
                ).first()
                is not None
            )


def prune_messaging(db: Database, tables: MessagingTables, *, older_than: timedelta) -> int:
    """Delete outbox rows published, and inbox records made, longer ago than older_than; returns how many."""
    cutoff = datetime.now(UTC) - older_than
    with db.transaction() as session:
        outbox = rows_affected(
            session.execute(delete(tables.outbox).where(tables.outbox.c.published_at < cutoff))
        )
        inbox = rows_affected(
            session.execute(delete(tables.inbox).where(tables.inbox.c.processed_at < cutoff))
        )
    if outbox or inbox:
        log.info(
            "pruned %d published outbox rows and %d inbox records older than %s",
            outbox,
            inbox,
            older_than,
            extra={"pruned_outbox": outbox, "pruned_inbox": inbox},
        )
    return outbox + inbox
