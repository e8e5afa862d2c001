"""Fixtures shared by every integration area."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.postgres import PostgresCluster, postgres_available


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL 15 cluster for the run; each user creates its own database in it."""
    problem = postgres_available()
    if problem:
        pytest.fail(f"PostgreSQL back end cannot run: {problem}; scripts/bootstrap installs it")
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()
