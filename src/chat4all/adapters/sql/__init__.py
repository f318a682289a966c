"""SQL persistence (SQLAlchemy 2 Core, async) for SQLite and PostgreSQL.

Composition root::

    engine = create_engine(url)                      # chat4all.adapters.sql.engine
    await upgrade_database(engine)                   # chat4all.adapters.sql.migrations
    uow_factory = SqlUnitOfWorkFactory(engine)       # chat4all.adapters.sql.unit_of_work
    outbox_reader = SqlOutboxReader(engine)          # chat4all.adapters.sql.outbox
    await check(engine)                              # readiness; raises Unavailable
    await engine.dispose()                           # on shutdown
"""
