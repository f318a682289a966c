"""The SQL fixtures (`sql_fixtures.py`) for every integration module that asks for them by name: a
migrated database of each backend emptied for every test (`backend`, `database_url`, `engine`,
`uow`), and `implementation` with `direct_pool_of_test`, `batches` and `ledger` for the behaviours
PostgreSQL also has on psycopg directly; `empty_database`, unmigrated, for the migrations. One
migrated PostgreSQL database serves the whole session."""

from tests.integration.sql_fixtures import (  # noqa: F401 - fixtures
    backend,
    batches,
    database_url,
    direct_pool_of_test,
    empty_database,
    engine,
    implementation,
    ledger,
    postgres_url,
    sqlite_template,
    uow,
)
