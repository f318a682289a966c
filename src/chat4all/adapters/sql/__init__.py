"""SQL persistence for SQLite (the embedded profile) and PostgreSQL (the distributed profile).

This directory holds what both engines share, on SQLAlchemy 2 Core (async): the engine, the
tables and their migrations, the unit of work and its repositories, the outbox and the send
ledger. `sqlite/` and `postgres/` hold what one engine does its own way; on PostgreSQL that is
raw psycopg, for the statements that run once per message.

Who writes a message's rows (`messages`, `message_deliveries`, `message_events`), by the two
ports that write them (`chat4all.application.ports.messages`):

===================  ==================================  ==================================
                     accepting (`MessageIntake`)         outcomes (`MessageBatches`)
===================  ==================================  ==================================
SQLite, embedded     `sqlite/intake.py`                  `messages.py` `update_many`, in a
                     `SqliteMessageIntake`               unit of work (`UnitOfWorkMessageBatches`)
PostgreSQL, API      `postgres/intake.py`                (the API does not route)
                     `PostgresMessageIntake`
PostgreSQL, worker   (the worker does not accept)        `postgres/batches.py`
                                                         `PostgresMessageBatches`
===================  ==================================  ==================================

`messages.py` (`SqlMessageRepository.add` and `update_many`) is also what the unit-of-work forms
of the two ports run on either engine when a process is given no adapter of its own for them.
Every writer encodes rows with `message_rows.py`; both intakes batch with `group_commit.py`.

Accepting a message also writes its read state and events on every path (the unit of work's
`application.reading.store_new_message`, or the same rows written by each intake itself):
`conversations` counters, `message_receipts`, `conversation_reads` and the users' event log
(`user_event_counters`, `user_events`; `event_log.py`). Reads (`read_state.py`) and history
pages (`history.py`) go through the unit of work; the event log is read outside it
(`SqlUserEventReader`).

The other tables written outside the unit of work: `outbox` rows are inserted by the intakes and
`outbox.py` (`SqlOutbox`), and claimed by `outbox.py` (`SqlOutboxReader`, embedded) or
`postgres/outbox.py` (the API's relay); `connector_sends` by `ledger.py` (embedded) or
`postgres/ledger.py` (the worker).

Composition::

    engine = create_engine(url)                      # chat4all.adapters.sql.engine
    await upgrade_database(engine)                   # chat4all.adapters.sql.migrations
    uow_factory = SqlUnitOfWorkFactory(engine)       # chat4all.adapters.sql.unit_of_work
    outbox_reader = SqlOutboxReader(engine)          # chat4all.adapters.sql.outbox
    event_reader = SqlUserEventReader(engine)        # chat4all.adapters.sql.event_log (long polls, retention)
    await check(engine)                              # readiness; raises Unavailable
    await engine.dispose()                           # on shutdown
"""

# The tables defined outside `tables` join its metadata when the package loads, so whatever reads
# `tables.metadata` (the migrations, their test) sees the whole schema.
from chat4all.adapters.sql import channel_tables as channel_tables  # noqa: E402
from chat4all.adapters.sql import webhook_tables as webhook_tables  # noqa: E402
