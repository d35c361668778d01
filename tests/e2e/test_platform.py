"""./start-platform.sh and ./stop-platform.sh, for real: every process, one entry point, nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from arti.localdb import port_owner
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT, embedded_url
from tests.edge_stack import descendants, free_port, listening_sockets
from tests.harness import child_env

# Free loopback ports for the HTTP side (nothing hard-coded that another program may hold); the database keeps
# its reserved port (scripts/reserve-ports.sh).
PORTS = {"ARTI_HTTP_PORT": str(free_port()), "ARTI_HANDLERS_PORT": str(free_port()),
         "ARTI_STUDIO_PORT": str(free_port()), "ARTI_DB_PORT": str(DEFAULT_PORTS["e2e_platform_database"])}


@pytest.fixture
def platform_env() -> Iterator[dict[str, str]]:
    env = child_env(**PORTS, ARTI_DATA_DIR=str(PROJECT_ROOT / ".arti" / "e2e-platform"))
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
    assert_only_loopback_listeners(platform_env)

    again = run("start-platform.sh", platform_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == 5  # postgres, the supervisor, handlers, worker, caddy

    stopped = run("stop-platform.sh", platform_env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for port in ("ARTI_HTTP_PORT", "ARTI_HANDLERS_PORT", "ARTI_STUDIO_PORT", "ARTI_DB_PORT"):
        assert port_owner(int(PORTS[port])) is None, f"{port} still has a listener"


def assert_only_loopback_listeners(env: dict[str, str]) -> None:
    """Every socket any process of the platform (Postgres included) listens on is a loopback address."""
    data = Path(env["ARTI_DATA_DIR"])
    roots = {int(f.read_text()) for f in (data / "run").glob("*.pid")}
    roots.add(int((data / "db" / "pgdata" / "postmaster.pid").read_text().splitlines()[0]))
    assert len(roots) == 5, f"postgres, the supervisor, handlers, worker and caddy: {roots}"
    sockets = listening_sockets(set().union(*(descendants(pid) for pid in roots)))
    ports = {port for _, port, _ in sockets}
    assert {int(env[name]) for name in ("ARTI_HTTP_PORT", "ARTI_HANDLERS_PORT", "ARTI_DB_PORT")} <= ports, sockets
    exposed = [s for s in sockets if s[0] not in ("127.0.0.1", "::1")]
    assert exposed == [], f"the platform listens beyond loopback: {exposed}"


@pytest.mark.parametrize(("port", "service"), [("ARTI_HANDLERS_PORT", "handlers"), ("ARTI_STUDIO_PORT", "caddy")])
def test_busy_port_is_a_clear_error_and_starts_nothing_of_ours(platform_env: dict[str, str], port: str,
                                                               service: str) -> None:
    """A busy Studio port used to surface as `caddy exited at once`, with the rest left running."""
    import socket

    with socket.socket() as squatter:
        # SO_REUSEADDR as servers set it: the port may hold TIME_WAIT connections (earlier tests' traffic took it as
        # an ephemeral port), which would refuse a plain bind although nothing listens there.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", int(PORTS[port])))
        squatter.listen()
        result = run("start-platform.sh", platform_env)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("arti: error:")]
    assert len(errors) == 1 and f"port {PORTS[port]} (for {service}) is already in use by" in errors[0], \
        result.stderr
    assert "Traceback" not in result.stderr
    run_dir = Path(platform_env["ARTI_DATA_DIR"]) / "run"
    assert not list(run_dir.glob("*.pid")), "no handlers, worker or caddy was started"
    assert port_owner(int(PORTS["ARTI_DB_PORT"])) is None, "nor Postgres"


def test_drive_the_running_platform_through_caddy(platform_env: dict[str, str]) -> None:
    """Local JWT → a handler through Caddy → a sync of a demo account (provider faked) → the run succeeds."""
    from arti.crypto import TokenCipher, generate_key_setting
    from arti.providers.base import TokenSet
    from arti.tokens import SAVE_SQL, token_params
    from tests.fake_providers import FakeProviders

    keys = generate_key_setting("e2e")
    with FakeProviders() as fake:
        env = platform_env | {"ARTI_ENCRYPTION_KEYS": keys, "ARTI_PROVIDER_GATEWAY": fake.url,
                              "SPOTIFY_CLIENT_ID": "demo-client", "SPOTIFY_CLIENT_SECRET": "demo-secret"}
        started = subprocess.run(["./start-platform.sh", "--demo"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                 text=True, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        token = subprocess.run([sys.executable, "-m", "arti.cli", "token", "--user", "analyst@northstar.test",
                                "--quiet"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert token.returncode == 0, token.stderr
        jwt = token.stdout.strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{PORTS['ARTI_HTTP_PORT']}/functions/v1/insights/ask",
            data=json.dumps({"org_id": "00000000-0000-4000-b000-000000000001",
                             "question": "What is the Moonrise single launch budget?"}).encode(),
            headers={"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200
            assert json.loads(response.read())["mode"] == "extractive"

        account = "00000000-0000-4000-d000-000000000001"  # the demo Spotify account
        with psycopg.connect(embedded_url(int(PORTS["ARTI_DB_PORT"])), autocommit=True) as conn:
            conn.execute(SAVE_SQL, token_params(TokenCipher.from_setting(keys), account,
                                                TokenSet(access_token="BQD-demo", refresh_token="AQD-demo")))
        synced = subprocess.run([sys.executable, "-m", "arti.cli", "sync", "--account", account, "--wait", "60"],
                                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        with psycopg.connect(embedded_url(int(PORTS["ARTI_DB_PORT"]))) as conn:
            status = conn.execute("select status::text from public.sync_runs where account_id = %s "
                                  "order by queued_at desc limit 1", (account,)).fetchone()
        assert status == ("succeeded",)
        assert any("api.spotify.com" in url for _, url in fake.requests)
