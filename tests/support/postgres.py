"""A private, throwaway PostgreSQL 15 cluster for tests (recipe: docs/test-stack.md).

    cluster = PostgresCluster.start()        # initdb + pg_ctl start on a free loopback port
    url = cluster.create_database("t1")      # postgresql://postgres@127.0.0.1:PORT/t1
    cluster.stop()                           # pg_ctl stop -m fast (by its data dir, never by name)

initdb and pg_ctl refuse to run as root, so they run as the ``postgres`` user; the cluster lives in a
short temp dir (socket paths must stay under 108 bytes) owned by that user and is deleted at stop.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import ServiceFailed, free_port, port_open, wait_until

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> str | None:
    """None when a cluster can be started here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (Debian package postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no 'postgres' user to run initdb as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip extra 'cityhall')"
    return None


@dataclass
class PostgresCluster:
    directory: Path
    port: int
    user: str | None  # the OS user the server runs as (None = ourselves)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        full = (["runuser", "-u", self.user, "--"] + argv) if self.user else argv
        return subprocess.run(full, cwd=self.directory, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    @classmethod
    def start(cls) -> "PostgresCluster":
        problem = postgres_available()
        if problem:
            raise ServiceFailed(problem)
        directory = Path(tempfile.mkdtemp(prefix="pg-"))
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        cluster = cls(directory, free_port(), user)
        done = cluster._run([str(PG_BIN / "initdb"), "-D", str(cluster.data_dir), "--auth=trust",
                             "--username=postgres", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], 60)
        if done.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise ServiceFailed(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        options = (f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200 -c shared_buffers=32MB")
        done = cluster._run([str(PG_BIN / "pg_ctl"), "-D", str(cluster.data_dir), "-l", str(cluster.log_path),
                             "-w", "-t", "30", "-o", options, "start"], 60)
        if done.returncode != 0:
            log = cluster.log_path.read_text(errors="replace") if cluster.log_path.exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise ServiceFailed(f"pg_ctl start failed: {done.stderr.strip()}\n{log[-2000:]}")
        wait_until(lambda: port_open("127.0.0.1", cluster.port), 15, "PostgreSQL to accept connections")
        return cluster

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if not self.data_dir.exists():
            return
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"], 60)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
