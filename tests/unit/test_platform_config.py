"""Docker-mode configuration, checked on a machine without a Docker engine.

* docker-compose.yml is validated against the Compose Specification JSON schema (a pinned copy in
  tests/fixtures, see compose-spec.md there) and against the platform's own rules: healthchecks,
  depends_on conditions, published ports, required secrets, pinned images, documented variables.
* docker/Dockerfile and its ignore file are checked statically.
* The Caddyfile is validated by `caddy validate` (environment unset, set, and as the compose service
  sets it), then served by a real Caddy on free loopback ports in front of a tiny Python upstream.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from arti.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "Caddyfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
COMPOSE_SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
COMPOSE_SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"

SUPABASE_SERVICES = {"db", "auth", "rest", "realtime", "storage", "meta", "studio"}
OUR_SERVICES = {"handlers", "worker", "migrate", "caddy"}
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "REALTIME_DB_ENC_KEY",
    "REALTIME_SECRET_KEY_BASE",
    "PG_META_CRYPTO_KEY",
}
# Routes of the Supabase services that do not run in embedded mode, and the name their JSON 503 gives.
EMBEDDED_OFF_ROUTES = {
    "/rest/v1/artists": "PostgREST",
    "/auth/v1/user": "GoTrue",
    "/realtime/v1/websocket?apikey=x&vsn=1.0.0": "Realtime",
    "/storage/v1/object/public/x.png": "Storage",
}
MAX_BODY = 1_000_000  # the Caddyfile's default ARTI_MAX_BODY_BYTES

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`...; `$${...}` is an escaped literal for the container shell.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
CADDY_VAR = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def strings_in(node: Any) -> Iterator[str]:
    """Every string value (not key) in a parsed YAML tree: what compose interpolates."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def compose_variables() -> set[str]:
    return {m.group(1) for text in strings_in(load_compose()) for m in COMPOSE_VAR.finditer(text)}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose interpolation of `${VAR}`, `${VAR:-default}` and `${VAR-default}` against `env`."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            assert value, f"${{{name}}} is required: {arg}"
            return value
        return value or ""

    return COMPOSE_VAR.sub(replace, text).replace("$$", "$")


def caddy_variables() -> set[str]:
    """`{$NAME}` / `{$NAME:default}` used by the Caddyfile (comments left out)."""
    code = "\n".join(line for line in CADDYFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    return {m.group(1) for m in CADDY_VAR.finditer(code)}


def env_example_entries() -> list[tuple[int, str, str, bool]]:
    """(line number, name, value, active) for every `NAME=value` or `# NAME=value` line."""
    entries = []
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        match = ENV_LINE.match(line)
        if match:
            entries.append((number, match.group(2), match.group(3), match.group(1) is None))
    return entries


def documented_variables() -> set[str]:
    return {name for _, name, _, _ in env_example_entries()}


def settings_env_names() -> set[str]:
    """Every environment name the app's Settings read (their validation aliases)."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None:
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


def depends_on(service: dict[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on", {})
    assert isinstance(deps, dict), "depends_on must be the long form (service: {condition: ...})"
    return deps


def published_ports(service: dict[str, Any]) -> list[str]:
    ports = []
    for port in service.get("ports", []):
        assert isinstance(port, str), f"write published ports as strings, got {port!r}"
        ports.append(port)
    return ports


# --------------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------------


def test_compose_schema_fixture_is_the_recorded_copy() -> None:
    assert hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest() == COMPOSE_SCHEMA_SHA256


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load_compose())]
    assert errors == []
    # The schema does bite: an unknown service key and a wrong depends_on condition are refused.
    assert not validator.is_valid({"services": {"a": {"image": "x", "bogus": 1}}})
    assert not validator.is_valid({"services": {"a": {"image": "x", "depends_on": {"b": {"condition": "up"}}}}})


def test_compose_has_the_supabase_stack_our_processes_and_optional_n8n() -> None:
    svc = services()
    assert set(svc) >= SUPABASE_SERVICES | OUR_SERVICES | {"n8n"}
    assert svc["n8n"].get("profiles") == ["n8n"]
    assert [name for name, s in svc.items() if name != "n8n" and s.get("profiles")] == []
    assert svc["db"]["image"].startswith("supabase/postgres:15.")
    expected_images = {
        "auth": "supabase/gotrue:",
        "rest": "postgrest/postgrest:",
        "realtime": "supabase/realtime:",
        "storage": "supabase/storage-api:",
        "meta": "supabase/postgres-meta:",
        "studio": "supabase/studio:",
        "caddy": "caddy:2",
    }
    for name, prefix in expected_images.items():
        assert svc[name]["image"].startswith(prefix), name


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} is not pinned"


def test_our_processes_share_one_image_built_from_docker_dockerfile() -> None:
    svc = services()
    for name in ("handlers", "worker", "migrate"):
        assert svc[name]["image"] == "arti-platform:local", name
        assert svc[name]["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}, name
        env = svc[name]["environment"]
        assert "@db:5432/postgres" in env["SUPABASE_DB_URL"], name
    assert svc["migrate"]["command"] == ["arti", "db", "migrate"]
    assert svc["worker"]["command"] == ["arti", "worker"]
    handlers = svc["handlers"]["command"]
    # `python -m handlers` checks the settings first (one line and exit 2 on a well-known JWT secret).
    assert handlers[:3] == ["python", "-m", "handlers"]
    assert svc["handlers"]["environment"]["ARTI_MODE"] == "docker"
    assert handlers[handlers.index("--port") + 1] == "8000"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        if is_one_shot(service):
            assert "healthcheck" not in service, f"{name} is one-shot: it is waited for by exit code"
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False), name
        assert check.get("test"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_only_migrate_is_one_shot_and_everything_else_restarts() -> None:
    one_shot = {name for name, s in services().items() if is_one_shot(s)}
    assert one_shot == {"migrate"}
    for name, service in services().items():
        if name != "migrate":
            assert service["restart"] == "unless-stopped", name


def test_every_depends_on_uses_a_condition_that_can_be_met() -> None:
    svc = services()
    for name, service in svc.items():
        for target, spec in depends_on(service).items():
            assert target in svc, f"{name} depends on unknown service {target}"
            assert isinstance(spec, dict), f"{name} -> {target}: no condition"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in svc[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert is_one_shot(svc[target]), f"{name} waits for long-running {target} to exit"
            else:
                assert condition == "service_started", f"{name} -> {target}: condition {condition!r}"
            assert not svc[target].get("profiles") or service.get("profiles"), (
                f"{name} depends on {target}, which only runs with a profile"
            )


def test_migrations_gate_the_api_and_our_processes() -> None:
    svc = services()
    for name in ("handlers", "worker", "rest"):
        assert depends_on(svc[name])["migrate"] == {"condition": "service_completed_successfully"}, name
    assert depends_on(svc["migrate"])["db"] == {"condition": "service_healthy"}
    # GoTrue owns the auth schema: our migrations run after its own.
    assert depends_on(svc["migrate"])["auth"] == {"condition": "service_healthy"}
    assert depends_on(svc["caddy"])["handlers"] == {"condition": "service_healthy"}


def test_dependency_graph_has_no_cycle() -> None:
    svc = services()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        assert state.get(name) != "visiting", "dependency cycle: " + " -> ".join([*path, name])
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for target in depends_on(svc[name]):
            visit(target, [*path, name])
        state[name] = "done"

    for name in svc:
        visit(name, [])


def test_only_caddy_publishes_ports_and_db_only_on_loopback() -> None:
    publishers = {name for name, s in services().items() if s.get("ports")}
    assert publishers <= {"caddy", "db"}
    assert "caddy" in publishers
    for port in published_ports(services()["db"]):
        assert port.startswith("127.0.0.1:"), f"db publishes {port} beyond loopback"
    caddy_ports = published_ports(services()["caddy"])
    # The API is published on loopback unless ARTI_HTTP_BIND opens it.
    assert "${ARTI_HTTP_BIND:-127.0.0.1}:${ARTI_HTTP_PORT:-8080}:8080" in caddy_ports
    # The tools listener (Studio has no login) is published on loopback only.
    assert [p for p in caddy_ports if not p.startswith("${ARTI_HTTP_BIND")] == [
        "127.0.0.1:${ARTI_STUDIO_PORT:-54323}:54323"
    ]
    for name, service in services().items():
        assert service.get("network_mode") != "host", name


def test_required_secrets_fail_loudly_and_have_no_default() -> None:
    seen: set[str] = set()
    for text in strings_in(load_compose()):
        for match in COMPOSE_VAR.finditer(text):
            name, op = match.group(1), match.group(2)
            if name in REQUIRED_SECRETS:
                seen.add(name)
                assert op == ":?", f"{match.group(0)}: a required secret must use ${{{name}:?message}}"
    assert seen == REQUIRED_SECRETS


def test_compose_variables_are_all_documented_in_env_example() -> None:
    missing = compose_variables() - documented_variables()
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_named_volumes_are_declared_and_bind_mounts_exist() -> None:
    compose = load_compose()
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith(("./", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {sorted(declared - used)}"


def test_caddy_service_sets_every_upstream_to_a_service_of_this_file() -> None:
    svc = services()
    env = svc["caddy"]["environment"]
    aliases = {alias for s in svc.values() for net in (s.get("networks") or {}).values() for alias in net["aliases"]}
    upstream_vars = {name for name in caddy_variables() if name.endswith("_UPSTREAM")}
    assert upstream_vars == {name for name in env if name.endswith("_UPSTREAM")}
    for name in upstream_vars:
        host = env[name].rsplit(":", 1)[0]
        assert host in svc or host in aliases, f"{name}={env[name]} names no service"
    # Realtime gets its tenant from the host name Caddy sends.
    assert env["ARTI_REALTIME_UPSTREAM"].startswith("realtime-dev.")
    assert env["ARTI_HTTP_PORT"] == "8080"
    assert env["ARTI_STUDIO_PORT"] == "54323"


# --------------------------------------------------------------------------------------------------
# .env.example
# --------------------------------------------------------------------------------------------------


def test_env_example_keeps_the_app_settings_and_documents_the_caddyfile() -> None:
    documented = documented_variables()
    assert documented >= {
        "SUPABASE_DB_URL",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_JWT_SECRET",
        "ARTI_DB_PORT",
        "ARTI_DATA_DIR",
    }
    missing_app = settings_env_names() - documented
    assert not missing_app, f"app settings missing from .env.example: {sorted(missing_app)}"
    missing_caddy = caddy_variables() - documented
    assert not missing_caddy, f"Caddyfile variables missing from .env.example: {sorted(missing_caddy)}"


def test_env_example_gives_every_variable_a_comment_and_documents_it_once() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    names = [name for _, name, _, _ in env_example_entries()]
    assert len(names) == len(set(names)), "a variable is documented twice"
    for number, name, _, _ in env_example_entries():
        above = lines[number - 2] if number >= 2 else ""
        assert above.startswith("#") and not ENV_LINE.match(above), f"{name} (line {number}) has no comment above it"


def test_env_example_active_lines_do_not_override_app_defaults_with_empty_values() -> None:
    # An empty `NAME=` is a value for pydantic-settings (an empty ARTI_DATA_DIR is the current directory,
    # an empty SUPABASE_JWT_SECRET an empty key): copying .env.example must keep embedded mode working.
    by_alias = {}
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        for name in [alias] if isinstance(alias, str) else getattr(alias, "choices", []):
            by_alias[name] = info
    for _, name, value, active in env_example_entries():
        if active and value == "" and name in by_alias:
            assert by_alias[name].default is None, (
                f"{name}= (empty) would replace its default {by_alias[name].default!r}"
            )


def test_env_example_leaves_the_required_secrets_empty() -> None:
    entries = {name: (value, active) for _, name, value, active in env_example_entries()}
    for name in REQUIRED_SECRETS:
        value, _ = entries[name]
        assert value == "", f"{name} must not ship with a value in .env.example"


# --------------------------------------------------------------------------------------------------
# docker/Dockerfile
# --------------------------------------------------------------------------------------------------


def test_dockerfile_builds_the_project_on_python_311_slim_as_a_non_root_user() -> None:
    instructions = [line.strip() for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines() if line.strip()]
    instructions = [line for line in instructions if not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    copies = [line.split()[1:-1] for line in instructions if line.startswith("COPY ")]
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
    copied = {source for sources in copies for source in sources}
    assert {"pyproject.toml", "README.md", "arti", "handlers", "jobs", "supabase", "sql_functions"} <= copied
    assert any(line.startswith("RUN pip install") and " ." in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_docker_build_context_never_ships_secrets_or_local_state() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start from nothing and re-include what the Dockerfile copies"
    reincluded = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert not reincluded & {".env", ".venv", ".arti", ".git", "tests", "bench"}


# --------------------------------------------------------------------------------------------------
# Caddyfile: caddy validate / adapt
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caddy_bin() -> str:
    path = shutil.which("caddy")
    if path is None:
        pytest.fail("caddy is not installed: run scripts/install-system-deps.sh (Debian package `caddy`)")
    return path


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: no ARTI_* variables from the caller, Caddy's state kept in `home`."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }


def caddy_cli(caddy: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [caddy, *args, "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def all_caddy_variables_set() -> dict[str, str]:
    return {
        "ARTI_HTTP_PORT": "18080",
        "ARTI_HTTP_BIND": "127.0.0.2",
        "ARTI_STUDIO_PORT": "18323",
        "ARTI_STUDIO_BIND": "127.0.0.1",
        "ARTI_CADDY_ADMIN": "localhost:12019",
        "ARTI_CORS_ORIGINS": "https://app.example.com,http://localhost:3000",
        "ARTI_MAX_BODY_BYTES": "2000000",
        "ARTI_STORAGE_MAX_BODY_BYTES": "10000000",
        "ARTI_HANDLERS_UPSTREAM": "handlers:8000",
        "ARTI_REST_UPSTREAM": "rest:3000",
        "ARTI_AUTH_UPSTREAM": "auth:9999",
        "ARTI_REALTIME_UPSTREAM": "realtime-dev.supabase-realtime:4000",
        "ARTI_STORAGE_UPSTREAM": "storage:5000",
        "ARTI_STUDIO_UPSTREAM": "studio:3000",
        "ARTI_N8N_UPSTREAM": "n8n:5678",
    }


def test_all_caddyfile_variables_are_exercised_by_these_tests() -> None:
    assert caddy_variables() == set(all_caddy_variables_set())


def test_caddyfile_validates_with_the_environment_unset(caddy_bin: str, tmp_path: Path) -> None:
    result = caddy_cli(caddy_bin, ["validate"], base_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_caddyfile_validates_with_every_variable_set(caddy_bin: str, tmp_path: Path) -> None:
    result = caddy_cli(caddy_bin, ["validate"], base_env(tmp_path) | all_caddy_variables_set())
    assert result.returncode == 0, result.stderr


def test_caddyfile_validates_with_the_compose_service_environment(caddy_bin: str, tmp_path: Path) -> None:
    env = {name: interpolate(str(value), {}) for name, value in services()["caddy"]["environment"].items()}
    result = caddy_cli(caddy_bin, ["validate"], base_env(tmp_path) | env)
    assert result.returncode == 0, result.stderr


def test_caddyfile_is_formatted(caddy_bin: str) -> None:
    result = subprocess.run([caddy_bin, "fmt", str(CADDYFILE)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == CADDYFILE.read_text(), "run `caddy fmt --overwrite Caddyfile`"


def test_defaults_turn_the_admin_api_off_and_keep_the_tools_listener_on_loopback(
    caddy_bin: str, tmp_path: Path
) -> None:
    result = caddy_cli(caddy_bin, ["adapt"], base_env(tmp_path))
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["admin"] == {"disabled": True}
    listeners = {addr for srv in config["apps"]["http"]["servers"].values() for addr in srv["listen"]}
    assert listeners == {"127.0.0.1:8080", "127.0.0.1:54323"}, "both listeners on loopback by default"


# --------------------------------------------------------------------------------------------------
# Caddyfile: a real Caddy in front of a tiny upstream
# --------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    body_length: int
    headers: dict[str, str] = field(default_factory=dict)


class FakeHandlers(http.server.BaseHTTPRequestHandler):
    """Stands in for the handlers' ASGI app: /functions/v1/health plus an echo of everything else.

    It answers with the headers a careless upstream might send (any-origin CORS, a framing policy,
    its own Server header) so the tests see Caddy replace them.
    """

    seen: list[Seen]

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self) -> None:
        body = self._read_body()
        self.seen.append(Seen(self.command, self.path, len(body), dict(self.headers.items())))
        if self.path == "/functions/v1/health":
            payload: dict[str, Any] = {"status": "ok", "service": "handlers", "database": "ok"}
        else:
            payload = {"path": self.path, "received": len(body)}
        out = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


def call(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None,
    *,
    chunked: bool = False,
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        conn.close()


@dataclass
class RunningCaddy:
    http_port: int
    tools_port: int
    upstream_seen: list[Seen]


@contextmanager
def running_caddy(
    caddy: str, home: Path, extra_env: dict[str, str], upstream_seen: list[Seen]
) -> Iterator[RunningCaddy]:
    http_port, tools_port = free_port(), free_port()
    env = base_env(home) | {"ARTI_HTTP_PORT": str(http_port), "ARTI_STUDIO_PORT": str(tools_port)} | extra_env
    log = (home / "caddy.log").open("w")
    process = subprocess.Popen(
        [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"caddy exited with {process.returncode}:\n{(home / 'caddy.log').read_text()}")
            try:
                if call(http_port, "GET", "/health/caddy").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"caddy did not answer within 20 s:\n{(home / 'caddy.log').read_text()}")
            time.sleep(0.1)
        yield RunningCaddy(http_port, tools_port, upstream_seen)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


class QuietServer(http.server.ThreadingHTTPServer):
    """Keeps the errors of requests Caddy cut short (an over-limit chunked body) off the test output."""

    errors: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.errors.append(f"{client_address}: request aborted")


@contextmanager
def fake_handlers() -> Iterator[tuple[str, list[Seen]]]:
    """A FakeHandlers server on a free loopback port: its host:port and the requests it saw."""
    seen: list[Seen] = []
    handler = type("Handlers", (FakeHandlers,), {"seen": seen})
    upstream = QuietServer(("127.0.0.1", 0), handler)
    upstream.errors = []
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{upstream.server_address[1]}", seen
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def embedded(caddy_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCaddy]:
    """Caddy as in embedded mode: handlers on a loopback port, no Supabase services configured."""
    with fake_handlers() as (address, seen):
        env = {"ARTI_HANDLERS_UPSTREAM": address, "ARTI_CORS_ORIGINS": "https://app.example.com,http://localhost:3000"}
        with running_caddy(caddy_bin, tmp_path_factory.mktemp("caddy-embedded"), env, seen) as caddy:
            yield caddy


def assert_security_headers(response: Response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers.get_all("X-Frame-Options") == ["DENY"]
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers.get("Server") is None


def test_health_passes_the_handlers_health_through(embedded: RunningCaddy) -> None:
    response = call(embedded.http_port, "GET", "/health")
    assert response.status == 200
    assert response.json() == {"status": "ok", "service": "handlers", "database": "ok"}
    assert embedded.upstream_seen[-1].path == "/functions/v1/health"
    assert_security_headers(response)


def test_caddy_own_health_does_not_depend_on_upstreams(embedded: RunningCaddy) -> None:
    response = call(embedded.http_port, "GET", "/health/caddy")
    assert response.status == 200
    assert response.json() == {"status": "ok", "service": "caddy"}


def test_functions_are_proxied_with_path_and_query_kept(embedded: RunningCaddy) -> None:
    response = call(embedded.http_port, "GET", "/functions/v1/oauth/spotify/start?redirect=%2Fapp")
    assert response.status == 200
    assert response.json()["path"] == "/functions/v1/oauth/spotify/start?redirect=%2Fapp"
    assert embedded.upstream_seen[-1].headers.get("X-Forwarded-For") == "127.0.0.1"
    assert_security_headers(response)


@pytest.mark.parametrize(("path", "service"), EMBEDDED_OFF_ROUTES.items())
def test_supabase_services_answer_json_503_in_embedded_mode(embedded: RunningCaddy, path: str, service: str) -> None:
    started = time.monotonic()
    response = call(embedded.http_port, "GET", path)
    assert time.monotonic() - started < 5, "an unconfigured upstream must answer at once"
    assert response.status == 503
    body = response.json()
    assert body["error"] == "unavailable"
    assert service in body["message"] and "not running in embedded mode" in body["message"]
    assert_security_headers(response)


def test_unknown_paths_answer_json_404(embedded: RunningCaddy) -> None:
    response = call(embedded.http_port, "GET", "/api/users")
    assert response.status == 404
    assert response.json()["error"] == "not_found"
    assert_security_headers(response)


def test_preflight_from_an_allowed_origin_is_answered_by_caddy(embedded: RunningCaddy) -> None:
    before = len(embedded.upstream_seen)
    response = call(
        embedded.http_port,
        "OPTIONS",
        "/functions/v1/insights/ask",
        {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, apikey, content-type, x-client-info",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, apikey, content-type, x-client-info"
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert response.headers.get("Access-Control-Allow-Credentials") is None
    assert len(embedded.upstream_seen) == before, "a preflight must not reach the upstream"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "https://app.example.com.evil.example", "https://app.example.com,http://localhost:3000"],
)
def test_preflight_from_another_origin_gets_no_cors_headers(embedded: RunningCaddy, origin: str) -> None:
    response = call(
        embedded.http_port,
        "OPTIONS",
        "/rest/v1/artists",
        {"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    assert response.status == 403
    assert response.json()["error"] == "cors_origin_not_allowed"
    assert not [name for name in response.headers if name.lower().startswith("access-control-allow")]


def test_real_requests_get_cors_only_for_listed_origins_and_never_the_upstream_wildcard(embedded: RunningCaddy) -> None:
    allowed = call(embedded.http_port, "GET", "/functions/v1/echo", {"Origin": "http://localhost:3000"})
    assert allowed.status == 200
    assert allowed.headers.get_all("Access-Control-Allow-Origin") == ["http://localhost:3000"]
    assert "Content-Range" in allowed.headers["Access-Control-Expose-Headers"]
    other = call(embedded.http_port, "GET", "/functions/v1/echo", {"Origin": "https://evil.example"})
    assert other.status == 200
    assert other.headers.get("Access-Control-Allow-Origin") is None
    no_origin = call(embedded.http_port, "GET", "/functions/v1/echo")
    assert no_origin.headers.get("Access-Control-Allow-Origin") is None
    # Caddy's own answers (here the embedded-mode 503) carry CORS too, so the frontend can read them.
    unavailable = call(embedded.http_port, "GET", "/rest/v1/artists", {"Origin": "https://app.example.com"})
    assert unavailable.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_a_body_within_the_limit_reaches_the_handlers(embedded: RunningCaddy) -> None:
    response = call(
        embedded.http_port, "POST", "/functions/v1/echo", {"Content-Type": "application/json"}, b"x" * MAX_BODY
    )
    assert response.status == 200
    assert response.json()["received"] == MAX_BODY


def test_a_declared_body_over_the_limit_is_refused_before_the_upstream(embedded: RunningCaddy) -> None:
    before = len(embedded.upstream_seen)
    response = call(
        embedded.http_port, "POST", "/functions/v1/echo", {"Content-Type": "application/json"}, b"x" * (MAX_BODY + 1)
    )
    assert response.status == 413
    assert response.json()["error"] == "payload_too_large"
    assert_security_headers(response)
    assert len(embedded.upstream_seen) == before


def test_a_chunked_body_over_the_limit_is_cut_with_413(embedded: RunningCaddy) -> None:
    chunk = b"y" * 50_000
    response = call(
        embedded.http_port,
        "POST",
        "/functions/v1/echo",
        {"Content-Type": "application/octet-stream"},
        (chunk for _ in range(MAX_BODY // len(chunk) + 1)),
        chunked=True,
    )
    assert response.status == 413
    assert response.json()["error"] == "payload_too_large"


def test_the_tools_listener_answers_json_503_for_studio_and_n8n_in_embedded_mode(embedded: RunningCaddy) -> None:
    studio = call(embedded.tools_port, "GET", "/project/default")
    assert studio.status == 503
    assert "Studio" in studio.json()["message"]
    n8n = call(embedded.tools_port, "GET", "/n8n/")
    assert n8n.status == 503
    assert "n8n" in n8n.json()["message"]
    assert studio.headers.get("Server") is None


def test_with_upstreams_configured_but_down_health_and_routes_answer_json(caddy_bin: str, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {name: dead for name in all_caddy_variables_set() if name.endswith("_UPSTREAM")}
    with running_caddy(caddy_bin, tmp_path, env, []) as caddy:
        health = call(caddy.http_port, "GET", "/health")
        assert health.status == 503
        assert health.json() == {"status": "unavailable", "caddy": "ok", "handlers": "unreachable"}
        assert_security_headers(health)
        rest = call(caddy.http_port, "GET", "/rest/v1/artists")
        assert rest.status == 502
        assert rest.json()["error"] == "upstream_unreachable"
        assert_security_headers(rest)
        blocked = call(caddy.http_port, "GET", "/realtime/v1/api/tenants/realtime-dev")
        assert blocked.status == 403


def test_docker_mode_routes_strip_prefixes_and_map_realtime_like_kong(caddy_bin: str, tmp_path: Path) -> None:
    with fake_handlers() as (address, seen):
        env = {name: address for name in all_caddy_variables_set() if name.endswith("_UPSTREAM")}
        env["ARTI_REALTIME_UPSTREAM"] = address.replace("127.0.0.1", "localhost")
        with running_caddy(caddy_bin, tmp_path, env, seen) as caddy:
            expected = {
                "/rest/v1/artists?select=id,name": "/artists?select=id,name",
                "/auth/v1/token?grant_type=password": "/token?grant_type=password",
                "/storage/v1/object/sign/media/a.png": "/object/sign/media/a.png",
                "/realtime/v1/websocket?apikey=k&vsn=1.0.0": "/socket/websocket?apikey=k&vsn=1.0.0",
                "/realtime/v1/api/broadcast": "/api/broadcast",
                "/functions/v1/health": "/functions/v1/health",
            }
            for public, upstream in expected.items():
                response = call(caddy.http_port, "GET", public, {"Origin": "https://evil.example"})
                assert response.status == 200, public
                assert seen[-1].path == upstream, public
                assert response.headers.get("Access-Control-Allow-Origin") is None, "upstream `*` must not leak"
                assert_security_headers(response)
            storage = next(s for s in seen if s.path.startswith("/object/"))
            assert storage.headers["X-Forwarded-Prefix"] == "/storage/v1"
            # Realtime's tenant is the first label of the Host header it receives.
            socket_request = next(s for s in seen if s.path.startswith("/socket/"))
            assert socket_request.headers["Host"] == env["ARTI_REALTIME_UPSTREAM"]
            # Uploads get Storage's limit, not the API's.
            upload = call(caddy.http_port, "POST", "/storage/v1/object/media/a.bin", {}, b"z" * (MAX_BODY + 1))
            assert upload.status == 200
            assert upload.json()["received"] == MAX_BODY + 1
            for path in ("/realtime/v1/api/tenants", "/realtime/v1/api/openapi"):
                assert call(caddy.http_port, "GET", path).status == 403, path
            studio = call(caddy.tools_port, "GET", "/project/default")
            assert seen[-1].path == "/project/default" and studio.status == 200
            call(caddy.tools_port, "GET", "/n8n/rest/settings")
            assert seen[-1].path == "/rest/settings"
