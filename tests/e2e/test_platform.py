"""./start-platform.sh and ./stop-platform.sh, for real: every process, one entry point, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from arti.localdb import port_owner
from arti.settings import PROJECT_ROOT, embedded_url

PORTS = {"ARTI_HTTP_PORT": "18080", "ARTI_HANDLERS_PORT": "18000", "ARTI_STUDIO_PORT": "18323",
         "ARTI_DB_PORT": "55422"}


@pytest.fixture
def platform_env() -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ARTI_"))}
    env.update(PORTS, ARTI_DATA_DIR=str(PROJECT_ROOT / ".arti" / "e2e-platform"))
    try:
        yield env
    finally:
        subprocess.run(["./stop-platform.sh"], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120)


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"./{script}"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def get(path: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['ARTI_HTTP_PORT']}{path}", timeout=10) as response:
        return response.status, json.loads(response.read())


def test_start_twice_serve_and_stop_cleanly(platform_env: dict[str, str]) -> None:
    started = run("start-platform.sh", platform_env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "health      200" in started.stdout
    status, body = get("/health")
    assert status == 200 and body["status"] == "ok"
    status, body = get("/functions/v1/health")
    assert status == 200 and body["checks"]["worker"]["status"] == "ok"  # type: ignore[index]
    with psycopg.connect(embedded_url(int(PORTS["ARTI_DB_PORT"]))) as conn:
        extensions = {row[0] for row in conn.execute("select extname from pg_extension")}
    assert {"vector", "pg_cron"} <= extensions

    again = run("start-platform.sh", platform_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == 4  # postgres, handlers, worker, caddy

    stopped = run("stop-platform.sh", platform_env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for port in ("ARTI_HTTP_PORT", "ARTI_HANDLERS_PORT", "ARTI_STUDIO_PORT", "ARTI_DB_PORT"):
        assert port_owner(int(PORTS[port])) is None, f"{port} still has a listener"


def test_busy_port_is_a_clear_error(platform_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(PORTS["ARTI_HANDLERS_PORT"])))
        squatter.listen()
        result = run("start-platform.sh", platform_env)
    assert result.returncode != 0
    assert f"port {PORTS['ARTI_HANDLERS_PORT']} (for handlers) is already in use by" in result.stderr
    assert "Traceback" not in result.stderr
