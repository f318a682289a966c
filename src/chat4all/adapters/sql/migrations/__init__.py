"""Schema migrations (Alembic), shipped inside the package so an installed Chat4All can migrate.

Run them with `await upgrade_database(url_or_engine)`; no alembic.ini is needed. To write a new
migration, change `chat4all/adapters/sql/tables.py`, then generate a draft against a database
at the current head and review it (SQLite drafts use batch mode)::

    from alembic import command
    from chat4all.adapters.sql.migrations import alembic_config
    command.revision(alembic_config("sqlite+aiosqlite:///dev.db"), "what changed", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from chat4all.adapters.sql.engine import create_engine, exclusive_use
from chat4all.adapters.sql.errors import translate_errors

SCRIPT_LOCATION = Path(__file__).resolve().parent
# Any constant; PostgreSQL migrators hold this advisory lock so concurrent starts take turns.
_ADVISORY_LOCK_KEY = 0x43_34_41_4D_49_47


def alembic_config(url: str | URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if url is not None:
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


async def upgrade_database(target: str | URL | AsyncEngine, revision: str = "head") -> None:
    """Migrates the database to `revision` (default: the newest), in one transaction.

    Safe to call from several processes at once; not twice at once within one process (Alembic
    keeps its migration context in module-level state). Pass the engine itself for in-memory
    SQLite, whose database exists only inside that engine's connection.
    """
    await _run(target, "upgrade", revision)


async def downgrade_database(target: str | URL | AsyncEngine, revision: str) -> None:
    """Migrates the database back to `revision` (`base` drops everything)."""
    await _run(target, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None before the first migration."""
    async with exclusive_use(engine):
        with translate_errors():
            async with engine.connect() as connection:
                return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def _run(target: str | URL | AsyncEngine, direction: str, revision: str) -> None:
    engine = target if isinstance(target, AsyncEngine) else create_engine(target, pool_size=1, max_overflow=0)
    try:
        async with exclusive_use(engine):
            with translate_errors():
                async with engine.connect() as connection:
                    await connection.run_sync(_migrate, direction, revision)
    finally:
        if engine is not target:
            await engine.dispose()


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    # Issued on the driver connection: foreign_keys cannot change inside a transaction.
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()


def _migrate(connection: Connection, direction: str, revision: str) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild tables; with foreign keys enforced that would cascade or fail.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
            config = alembic_config()
            config.attributes["connection"] = connection
            getattr(command, direction)(config, revision)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} rows violating foreign keys, e.g. {broken[0]}")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")
