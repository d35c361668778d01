"""`arti` answers bad situations with one actionable line and a non-zero exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from arti.errors import ArtiError
from arti.localdb import LocalCluster
from arti.settings import PROJECT_ROOT
from tests.harness import child_env


def run_arti(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = child_env(**(env or {}))
    return subprocess.run([sys.executable, "-m", "arti.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=PROJECT_ROOT, timeout=120)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("arti: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_port_taken_by_another_program_names_it(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = run_arti("db", "start", env={"ARTI_DB_PORT": str(port), "ARTI_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    line = _error_line(result)
    assert f"port {port} is already in use by" in line
    assert f"(pid {os.getpid()})" in line
    assert "ARTI_DB_PORT" in line
    assert not (tmp_path / "db" / "pgdata").exists(), "nothing is initialised when the port is taken"


def test_wrong_database_url_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        free_port = closed.getsockname()[1]
    url = f"postgresql://postgres:secret-pw@127.0.0.1:{free_port}/postgres"
    result = run_arti("db", "migrate", env={"SUPABASE_DB_URL": url})
    assert result.returncode != 0
    line = _error_line(result)
    assert "cannot connect to the database at" in line and "SUPABASE_DB_URL" in line
    assert "secret-pw" not in result.stderr, "the password is never printed"


def test_malformed_database_url_is_one_line() -> None:
    result = run_arti("db", "status", env={"SUPABASE_DB_URL": "postgresql://[broken"})
    assert result.returncode != 0
    assert "SUPABASE_DB_URL" in _error_line(result)


def test_cloud_mode_refuses_to_manage_the_embedded_server() -> None:
    result = run_arti("db", "start", env={"SUPABASE_DB_URL": "postgresql://u:p@127.0.0.1:1/x"})
    assert result.returncode != 0
    assert "cloud mode" in _error_line(result)


def test_unreadable_migration_via_cli(tmp_path: Path, test_cluster: LocalCluster) -> None:
    # Every file's name and encoding are checked before the database is touched at all.
    (tmp_path / "20260101000000_bad.sql").write_bytes(b"\xff\xfe")
    name = f"arti_cli_{os.getpid()}"
    admin_url = f"postgresql://postgres:postgres@127.0.0.1:{test_cluster.port}/template1"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"create database {name}")
    try:
        env = {"SUPABASE_DB_URL": f"postgresql://postgres:postgres@127.0.0.1:{test_cluster.port}/{name}"}
        code = (
            "import sys; from pathlib import Path; from arti import cli; from arti.settings import get_settings;"
            f"s = get_settings(); s.migrations_dir = Path({str(tmp_path)!r}); sys.exit(cli.main(['db', 'migrate']))"
        )
        full_env = child_env(**env)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                                cwd=PROJECT_ROOT, timeout=120)
        assert result.returncode != 0
        assert "cannot read" in _error_line(result)
        with psycopg.connect(env["SUPABASE_DB_URL"]) as conn:
            assert conn.execute("select to_regnamespace('auth')").fetchone() == (None,), "nothing was applied"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"drop database if exists {name} with (force)")


def test_missing_system_packages_are_named_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from arti import localdb

    monkeypatch.setitem(localdb.REQUIRED_FILES, "postgresql-15-pgtap", tmp_path / "absent.control")
    with pytest.raises(ArtiError) as caught:
        LocalCluster(tmp_path / "db", 1).start()
    assert "missing system packages: postgresql-15-pgtap" in str(caught.value)
    assert "install-system-deps.sh" in str(caught.value)


def test_status_reports_server_port_extensions_and_pending(test_cluster: LocalCluster, database_url: str) -> None:
    env = {"ARTI_DB_PORT": str(test_cluster.port), "ARTI_DATA_DIR": str(test_cluster.root.parent),
           "ARTI_TEST_CLUSTER": "1"}
    # The test cluster lives at .arti/test-db; point a status at it through the same code path.
    code = (
        "import sys, json; from arti import cli; from arti.settings import get_settings;"
        "from arti.localdb import LocalCluster;"
        f"cli.embedded_cluster = lambda s: LocalCluster(__import__('pathlib').Path({str(test_cluster.root)!r}), "
        f"{test_cluster.port});"
        "sys.exit(cli.main(['db', 'status', '--json']))"
    )
    full_env = child_env(**env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["server"] == "running" and status["port"] == test_cluster.port
    assert status["extensions"]["vector"]["installed"] >= "0.8"
    assert status["extensions"]["pg_cron"]["installed"]
    assert status["pending_migrations"] == []
    nowhere = str(test_cluster.root.parent / "nowhere")
    text = run_arti("db", "status", env={"ARTI_DB_PORT": "1", "ARTI_DATA_DIR": nowhere})
    assert text.returncode == 3
    assert "server:      not initialised" in text.stdout
    assert "migrations:  unknown" in text.stdout


@pytest.mark.parametrize(("argv", "env", "says"), [
    (("sync", "--account", "not-a-uuid"), {}, "argument --account: 'not-a-uuid' is not a UUID"),
    (("sync", "--org", "42"), {}, "argument --org: '42' is not a UUID"),
    (("sync", "--all", "--wait", "-5"), {}, "argument --wait: -5 is not between 0 and 86400 seconds"),
    (("worker", "--concurrency", "0"), {}, "argument --concurrency: 0 is not at least 1"),
    (("worker", "--sync-concurrency", "-1"), {}, "argument --sync-concurrency: -1 is negative"),
    (("webhooks", "list", "--limit", "-1"), {}, "argument --limit: -1 is not at least 1"),
    (("jobs", "--limit", "x"), {}, "argument --limit: 'x' is not a whole number"),
    (("jobs",), {"ARTI_DB_PORT": "abc"}, "invalid setting ARTI_DB_PORT"),
    (("jobs",), {"ARTI_WORKER_CONCURRENCY": "0"}, "invalid setting ARTI_WORKER_CONCURRENCY"),
    (("nonsense",), {}, "invalid choice: 'nonsense'"),
])
def test_bad_input_is_one_line_saying_what_to_do(argv: tuple[str, ...], env: dict[str, str], says: str) -> None:
    """Issue 17: these printed tracebacks or were accepted."""
    result = run_arti(*argv, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    line = _error_line(result)
    assert says in line
    assert "--help" in line or "fix it in the environment or .env" in line


def test_bench_help_is_the_bench_harness_help() -> None:
    result = run_arti("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m bench") and "--only NAME" in result.stdout


def test_keys_generate_prints_a_usable_key_ring_and_rotates_one() -> None:
    from arti.crypto import TokenCipher

    first = run_arti("keys", "generate", "--kid", "first")
    assert first.returncode == 0, first.stderr
    value = first.stdout.strip().removeprefix("ARTI_ENCRYPTION_KEYS=")
    ring = TokenCipher.from_setting(value)
    secret = ring.encrypt("a token", "aad")
    rotated = run_arti("keys", "generate", "--rotate", "--kid", "second", env={"ARTI_ENCRYPTION_KEYS": value})
    assert rotated.returncode == 0, rotated.stderr
    new_ring = TokenCipher.from_setting(rotated.stdout.strip().removeprefix("ARTI_ENCRYPTION_KEYS="))
    assert new_ring.kids[0] == "second" and new_ring.decrypt(secret, "aad") == "a token"
    refused = run_arti("keys", "generate", "--rotate")
    assert refused.returncode != 0 and "needs the current ARTI_ENCRYPTION_KEYS" in _error_line(refused)
