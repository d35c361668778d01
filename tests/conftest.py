"""Fixtures shared by every test: the session database and PostgREST-style role switching."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.localdb import LocalCluster
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT
from tests.harness import TestDB, build_session_database

TEST_DB_PORT = int(os.environ.get("ARTI_TEST_DB_PORT", DEFAULT_PORTS["tests_database"]))


@pytest.fixture(scope="session")
def test_cluster() -> Iterator[LocalCluster]:
    """The tests' embedded cluster: started if it is not running, stopped at the end if we started it."""
    # Another port gets its own cluster folder, so parallel sessions never share (and reset) one database.
    folder = "test-db" if DEFAULT_PORTS["tests_database"] == TEST_DB_PORT else f"test-db-{TEST_DB_PORT}"
    cluster = LocalCluster(PROJECT_ROOT / ".arti" / folder, TEST_DB_PORT)
    started = cluster.start()
    try:
        yield cluster
    finally:
        if started:
            cluster.stop()


@pytest.fixture(scope="session")
def database_url(test_cluster: LocalCluster) -> str:
    """URL of the session database: fresh, migrated, with pgTAP."""
    return build_session_database(test_cluster)


@pytest.fixture
def db(database_url: str) -> Iterator[TestDB]:
    """A connection whose work is rolled back after the test."""
    conn: psycopg.Connection[Any] = psycopg.connect(database_url, row_factory=dict_row)
    try:
        yield TestDB(conn)
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection as the database owner, to arrange and inspect committed state (which the test
    removes itself)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection
