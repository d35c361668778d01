"""The embedded Postgres commits as Supabase's does (issue 18 item 5): a committed sync or webhook is on disk.

`synchronous_commit = off` (the first design, for speed) acknowledged a commit before its WAL was flushed: a crash
of the server could lose syncs and deliveries that callers had been told were stored.
"""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from arti.localdb import SERVER_USER, LocalCluster


def test_the_embedded_cluster_keeps_synchronous_commit_on(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, 54399)
    cluster.pgdata.mkdir(parents=True)
    if cluster.as_root:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root without the {SERVER_USER} user")
    cluster._write_config()
    settings = dict(line.split(" = ", 1) for line in (cluster.pgdata / "arti.conf").read_text().splitlines()
                    if " = " in line and not line.startswith("#"))
    assert settings["synchronous_commit"].split("#")[0].strip() == "on"
    assert "fsync" not in settings and "full_page_writes" not in settings  # Postgres' durable defaults stand
