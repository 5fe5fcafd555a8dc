"""The throwaway PostgreSQL server the ledger's tests run against (tests/postgres.py): it starts,
each test gets a database of its own, and a test can take the server away and bring it back."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres import Cluster, fresh_database


def test_a_fresh_database_answers(pg_url: str) -> None:
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
        name = connection.execute("SELECT current_database()").fetchone()
    assert name is not None
    assert name[0].startswith("test_a_fresh_database_answers_")
    assert pg_url.endswith(f"/{name[0]}")


def test_fresh_databases_are_isolated(pg_cluster: Cluster, request: pytest.FixtureRequest) -> None:
    first, second = fresh_database(pg_cluster, request), fresh_database(pg_cluster, request)
    assert first != second
    with psycopg.connect(first) as connection:
        connection.execute("CREATE TABLE runs (id text PRIMARY KEY)")
        connection.execute("INSERT INTO runs VALUES ('only in the first')")
    with psycopg.connect(second) as connection:
        assert connection.execute("SELECT to_regclass('runs')").fetchone() == (None,)


def test_fresh_database_names_are_plain_and_unique(pg_cluster: Cluster) -> None:
    # A parametrized test's name holds brackets, dashes and dots; PostgreSQL keeps 63 bytes.
    name = "test_x[Ünïcode-1.5/" + "y" * 80 + "]"
    urls = {fresh_database(pg_cluster, name) for _ in range(2)}
    assert len(urls) == 2
    for url in urls:
        database = url.rsplit("/", 1)[1]
        assert database.startswith("test_x_n_code_1_5_yyy")
        assert len(database) <= 63
        assert database.replace("_", "").isalnum()
        assert database.isascii()


def test_a_killed_server_refuses_connections_until_it_starts_again(
    pg_cluster: Cluster, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE runs (id text PRIMARY KEY)")
        connection.execute("INSERT INTO runs VALUES ('before the crash')")
    try:
        with psycopg.connect(pg_url) as open_before:
            pg_cluster.kill_server()
            # What was open breaks, and nothing new gets in.
            with pytest.raises(psycopg.OperationalError):
                open_before.execute("SELECT 1")
            with pytest.raises(psycopg.OperationalError), psycopg.connect(pg_url):
                pass
    finally:
        # Whatever failed above, the session's other tests get their server back.
        pg_cluster.start()
    with psycopg.connect(pg_url) as connection:
        # Same URL, same data: a committed row outlives the crash.
        assert connection.execute("SELECT id FROM runs").fetchall() == [("before the crash",)]
