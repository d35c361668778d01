"""Issue 14, items 1 and 2, tried as an outsider would, against the real edge (uvicorn + Caddy on loopback).

1. CRITICAL, found: in cloud mode with no SUPABASE_JWT_SECRET (a project with asymmetric signing keys), the
   handlers still accepted HS256 tokens signed with `supabase start`'s public secret: anyone could mint
   `app_metadata.platform_admin = true` and create platform admins through the service key.
2. MEDIUM, found: embedded mode's Caddy listened on every interface while tokens were signed with that secret.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import jwt
import pytest

from arti.jwt_auth import mint_service_key, mint_token
from arti.settings import LOCAL_JWT_SECRET, PROJECT_ROOT, WELL_KNOWN_JWT_SECRETS, Settings
from tests.edge_stack import EdgeStack, descendants, listening_sockets, run_handlers_once
from tests.fake_gotrue import FakeGoTrue
from tests.harness import child_env

SELF_HOSTING_PLACEHOLDER = "your-super-secret-jwt-token-with-at-least-32-characters-long"
EVERY_INTERFACE = ("0.0.0.0", "::")  # noqa: S104 (what the tests ask Caddy to bind, and then look for)


def forged_admin_token(secret: str) -> str:
    """What the attack pass minted: a platform admin's token signed with a published secret."""
    return mint_token(secret, str(uuid.uuid4()), "mallory@example.test",
                      app_metadata={"provider": "email", "providers": ["email"], "platform_admin": True})


@pytest.fixture
def gotrue() -> Iterator[FakeGoTrue]:
    service_key = jwt.encode({"role": "service_role", "iss": "supabase", "exp": 2_000_000_000},
                             uuid.uuid4().hex * 2, algorithm="HS256")
    with FakeGoTrue(service_key) as fake:
        yield fake


def cloud_env(database_url: str, gotrue: FakeGoTrue, **extra: str) -> dict[str, str]:
    """A Supabase project with asymmetric signing keys: no SUPABASE_JWT_SECRET, the JWKS at SUPABASE_URL."""
    return {"ARTI_MODE": "cloud", "SUPABASE_DB_URL": database_url, "SUPABASE_URL": gotrue.url,
            "SUPABASE_SERVICE_ROLE_KEY": gotrue.service_role_key, "SUPABASE_JWT_SECRET": "", **extra}


# --------------------------------------------------------------------------------------------- 1. the secret


def test_cloud_mode_without_a_secret_refuses_tokens_signed_with_the_local_secret(
        edge_factory: Callable[..., EdgeStack], database_url: str, gotrue: FakeGoTrue) -> None:
    stack = edge_factory(**cloud_env(database_url, gotrue))
    with stack.client() as http:
        for secret in sorted(WELL_KNOWN_JWT_SECRETS):
            forged = {"Authorization": f"Bearer {forged_admin_token(secret)}"}
            listed = http.get("/functions/v1/admin/users", headers=forged)
            assert listed.status_code == 401, listed.text
            assert listed.json()["error"] == "invalid_token"
            created = http.post("/functions/v1/admin/users", headers=forged,
                                json={"email": "mallory-admin@example.test", "password": "hunter22",
                                      "platform_admin": True})
            assert created.status_code == 401, created.text
        assert gotrue.admin_calls() == [], "the service key was never used for the forger"
        assert gotrue.created == []

        # The same routes work for a real platform admin, whose token the project's asymmetric key signed.
        admin = {"Authorization": "Bearer " + gotrue.sign(str(uuid.uuid4()), app_metadata={"platform_admin": True})}
        listed = http.get("/functions/v1/admin/users", headers=admin)
        assert listed.status_code == 200, listed.text
        assert ("GET", "/auth/v1/admin/users?page=1&per_page=50") in gotrue.admin_calls()


@pytest.mark.parametrize("mode", ["cloud", "docker"])
@pytest.mark.parametrize("secret", [LOCAL_JWT_SECRET, SELF_HOSTING_PLACEHOLDER])
def test_a_well_known_secret_stops_the_handlers_at_start(mode: str, secret: str, test_db_port: int,
                                                         database_url: str) -> None:
    result = run_handlers_once(test_db_port, ARTI_MODE=mode, SUPABASE_DB_URL=database_url,
                               SUPABASE_JWT_SECRET=secret)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SUPABASE_JWT_SECRET is a publicly known development secret" in lines[0], \
        result.stderr
    assert secret not in result.stderr, "the error names the setting, it does not repeat the secret"


def test_a_service_key_signed_with_the_local_secret_stops_the_handlers(test_db_port: int, database_url: str) -> None:
    result = run_handlers_once(test_db_port, ARTI_MODE="cloud", SUPABASE_DB_URL=database_url,
                               SUPABASE_JWT_SECRET=uuid.uuid4().hex * 2,
                               SUPABASE_SERVICE_ROLE_KEY=mint_service_key(LOCAL_JWT_SECRET, "service_role"))
    assert result.returncode == 2
    assert "SUPABASE_SERVICE_ROLE_KEY is signed with a publicly known development secret" in result.stderr


def test_cloud_mode_with_no_way_to_verify_tokens_stops_at_start(test_db_port: int, database_url: str) -> None:
    result = run_handlers_once(test_db_port, ARTI_MODE="cloud", SUPABASE_DB_URL=database_url)
    assert result.returncode == 2
    assert "cloud mode cannot verify tokens: set SUPABASE_URL" in result.stderr


def test_plain_uvicorn_refuses_the_same_configuration(test_db_port: int, database_url: str) -> None:
    """`uvicorn handlers.app:app` (how one might run it by hand) fails closed too: startup aborts."""
    stack = EdgeStack(test_db_port, ARTI_MODE="cloud", SUPABASE_DB_URL=database_url,
                      SUPABASE_JWT_SECRET=LOCAL_JWT_SECRET)
    result = subprocess.run([sys.executable, "-m", "uvicorn", "handlers.app:app", "--host", "127.0.0.1",
                             "--port", str(stack.handlers_port)], cwd=PROJECT_ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SUPABASE_JWT_SECRET is a publicly known development secret" in result.stderr
    assert "Application startup failed" in result.stderr


def test_platform_start_refuses_before_starting_anything(database_url: str, tmp_path: object) -> None:
    env = child_env(SUPABASE_DB_URL=database_url, SUPABASE_JWT_SECRET=LOCAL_JWT_SECRET,
                    ARTI_DATA_DIR=str(tmp_path), ARTI_HTTP_PORT="1", ARTI_HANDLERS_PORT="1")
    result = subprocess.run([sys.executable, "-m", "arti.cli", "platform", "start"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "SUPABASE_JWT_SECRET is a publicly known development secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "no process was started"  # type: ignore[operator]


def test_the_banner_prints_local_keys_only_in_embedded_mode(capsys: pytest.CaptureFixture[str],
                                                            database_url: str) -> None:
    from arti.cli import _print_endpoints

    project_secret = uuid.uuid4().hex * 2
    cloud = Settings(_env_file=None, db_url=database_url, jwt_secret=project_secret)  # type: ignore[call-arg]
    _print_endpoints(cloud)
    printed = capsys.readouterr().out
    assert project_secret not in printed and LOCAL_JWT_SECRET not in printed
    assert mint_service_key(project_secret, "service_role") not in printed
    assert mint_service_key(LOCAL_JWT_SECRET, "anon") not in printed
    assert "none is printed outside embedded mode" in printed

    embedded = Settings(_env_file=None, db_port=54399)  # type: ignore[call-arg]
    _print_endpoints(embedded)
    printed = capsys.readouterr().out
    assert mint_service_key(LOCAL_JWT_SECRET, "anon") in printed, "embedded mode shows `supabase start`'s keys"
    assert "http://127.0.0.1:" in printed


def test_embedded_mode_still_accepts_the_local_secret_on_loopback(edge_factory: Callable[..., EdgeStack]) -> None:
    """The local secret stays usable where it is meant to be: embedded mode, on loopback."""
    stack = edge_factory(SUPABASE_JWT_SECRET="")
    token = forged_admin_token(LOCAL_JWT_SECRET)
    with stack.client() as http:
        response = http.get("/functions/v1/admin/users", headers={"Authorization": f"Bearer {token}"})
    # Accepted as a platform admin; embedded mode has no Auth server, hence 503 (not 401/403).
    assert response.status_code == 503 and response.json()["error"] == "auth_unavailable", response.text


# --------------------------------------------------------------------------------------------- 2. loopback


def test_caddy_and_the_handlers_listen_on_loopback_only(edge: EdgeStack) -> None:
    pids = set().union(*(descendants(p.pid) for p in edge.processes.values()))
    sockets = listening_sockets(pids)
    ports = {port for _, port, _ in sockets}
    assert {edge.http_port, edge.handlers_port} <= ports, sockets
    exposed = [s for s in sockets if s[0] not in ("127.0.0.1", "::1")]
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_opening_the_listener_with_the_local_secret_is_refused(test_db_port: int) -> None:
    for bind in (*EVERY_INTERFACE, "127.0.0.1 192.0.2.10"):
        result = run_handlers_once(test_db_port, ARTI_HTTP_BIND=bind, SUPABASE_JWT_SECRET="")
        assert result.returncode == 2, (bind, result.stderr)
        assert f"ARTI_HTTP_BIND={bind} opens the API beyond loopback" in result.stderr


def test_opening_the_listener_with_a_fresh_secret_binds_where_told(edge_factory: Callable[..., EdgeStack]) -> None:
    stack = edge_factory(ARTI_HTTP_BIND=EVERY_INTERFACE[0], SUPABASE_JWT_SECRET=uuid.uuid4().hex * 2)
    sockets = listening_sockets(descendants(stack.processes["caddy"].pid))
    wildcard = {(a, p) for a, p, _ in sockets} & {(address, stack.http_port) for address in EVERY_INTERFACE}
    assert wildcard, f"Caddy binds every interface (0.0.0.0, or :: dual-stack) when told to: {sockets}"
    with stack.client() as http:
        forged = {"Authorization": f"Bearer {forged_admin_token(LOCAL_JWT_SECRET)}"}
        assert http.get("/functions/v1/admin/users", headers=forged).status_code == 401
