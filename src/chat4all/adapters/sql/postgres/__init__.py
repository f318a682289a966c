"""The distributed profile's hottest statements, sent with psycopg directly.

Accepting a message, relaying the outbox and recording a batch of outcomes run once per request,
once per relay round and once per worker batch; through SQLAlchemy each statement costs a pool
pre-ping, a BEGIN and the construct's compilation. These run on a small psycopg pool of
autocommit connections instead (`connections.py`): a statement is one round trip, and a
transaction costs only its own BEGIN and COMMIT. Prepared server-side after a few uses.

Every write of a message's rows on PostgreSQL in production:

- accepting (the API): `intake.py` (`PostgresMessageIntake`), one statement per batch;
- routing and delivery outcomes (the worker): `batches.py` (`PostgresMessageBatches`), a lock
  and a read, then one statement with the COMMIT.

Also here: the API's outbox relay (`outbox.py`), the worker's send ledger (`ledger.py`), and the
API's LISTEN connection that wakes event readers when another process commits events (`listener.py`).
Lists travel as JSON documents and `uuid[]` literals (`parameters.py`).
"""
