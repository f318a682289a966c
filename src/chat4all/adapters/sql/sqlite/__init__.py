"""What the embedded profile does on SQLite its own way.

Every write of a message's rows on SQLite:

- accepting: `intake.py` (`SqliteMessageIntake`), a batch of accepted messages per transaction,
  with their positions, receipts, unread counts and `message.created` events;
- routing and delivery outcomes: `chat4all.adapters.sql.messages` (`SqlMessageRepository.update_many`,
  after `get_many(..., for_update=True)`), in a unit of work (`UnitOfWorkMessageBatches`): SQLite
  takes its one write lock at BEGIN (see `chat4all.adapters.sql.engine`), so the shared SQLAlchemy
  statements need nothing more.

The engine itself (one connection, WAL, `BEGIN IMMEDIATE`) is in `chat4all.adapters.sql.engine`.
"""
