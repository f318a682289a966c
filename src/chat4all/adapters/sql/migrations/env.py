"""Alembic environment for Chat4All; see `chat4all.adapters.sql.migrations` for how it is run."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from chat4all.adapters.sql.tables import UtcDateTime, metadata

config = context.config


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations must not import the live tables module, so render its types in plain `sa` terms.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def _run_on(connection: Connection) -> None:
    # SQLite can only change most of a table by copying it: write future migrations in batch mode.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    from chat4all.adapters.sql.engine import create_engine

    engine = create_engine(url, pool_size=1, max_overflow=0, sqlite_foreign_keys=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url to render SQL offline")
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass a connection in config.attributes['connection'] or set sqlalchemy.url")
    asyncio.run(_run_with_url(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
