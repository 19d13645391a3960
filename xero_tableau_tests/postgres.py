"""A throwaway PostgreSQL server for the production-path tests: initdb + pg_ctl in a temp folder,
listening on loopback only, stopped and deleted when the test session ends.

``make test`` installs Debian's postgresql package when the server binaries are missing (CI runs
as root on Debian). PostgreSQL refuses to run as root, so as root the server runs as ``nobody``.
``XT_TEST_POSTGRES_URL`` points the tests at an existing database instead.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xero_tableau.sandbox.server import free_port


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a private server and yield its SQLAlchemy URL."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found: `make test` installs them "
            "(apt-get install postgresql), or set XT_TEST_POSTGRES_URL"
        )
    root = Path(tempfile.mkdtemp(prefix="xt-postgres-"))
    data = root / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="nobody")
        root.chmod(0o700)
        as_user = ["runuser", "-u", "nobody", "--"]

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "xt", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
        options += " -c fsync=off -c max_connections=60"
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"postgresql://xt@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
