"""`arti platform start|stop|status|supervise`: embedded-mode processes behind start-platform.sh.

`start` starts, in order: the embedded Postgres, migrations, then the supervisor (`arti platform supervise`,
arti/supervisor.py), which starts the handlers (uvicorn), the Procrastinate worker and Caddy on :8080 (and first
the local provider sandbox, arti/sandbox.py, with ARTI_PROVIDER_SANDBOX=1 in embedded mode) and restarts any of
them that exits (backoff, counted) — pid files in <data dir>/run, logs (rotated) in <data dir>/logs — then waits
until :8080/health answers 200. Re-running starts only what is not running.
`stop` stops the supervisor, which stops its children in reverse order (the worker gracefully), then Postgres,
and leaves no listener behind. `status` shows every process, Postgres included: pid, state, restarts, last exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arti.errors import ArtiError
from arti.localdb import LocalCluster, port_owner
from arti.settings import PROJECT_ROOT, Settings
from arti.supervisor import NAME, alive


@dataclass(frozen=True)
class Service:
    """A supervised process."""

    name: str
    argv: list[str]
    ports: tuple[int, ...]
    """Every port the process listens on: each must be free before it starts."""
    stop_timeout: float


def ports(settings: Settings) -> dict[str, int]:
    """The platform's ports, from the environment and `.env` alike (one place: arti.settings)."""
    return {"http": settings.http_port, "handlers": settings.handlers_port, "studio": settings.studio_port}


SANDBOX = "sandbox"


def sandbox_service(settings: Settings) -> Service:
    """The local provider sandbox (arti/sandbox.py): a child only with ARTI_PROVIDER_SANDBOX=1 in embedded mode."""
    return Service(SANDBOX, [sys.executable, "-m", "arti.sandbox", "--port", str(settings.sandbox_port)],
                   (settings.sandbox_port,), 5.0)


def services(settings: Settings) -> list[Service]:
    p = ports(settings)
    python = sys.executable
    # The sandbox first: it answers before the handlers and the worker can call it, and it is stopped last.
    sandbox = [sandbox_service(settings)] if settings.sandbox_active else []
    return [
        *sandbox,
        Service("handlers", [python, "-m", "handlers", "--host", "127.0.0.1", "--port", str(p["handlers"])],
                (p["handlers"],), 10.0),
        Service("worker", [python, "-m", "arti.cli", "worker"], (), 60.0),
        Service("caddy", ["caddy", "run", "--config", str(PROJECT_ROOT / "Caddyfile"), "--adapter", "caddyfile"],
                (p["http"], p["studio"]), 10.0),
    ]


class Supervisor:
    """Pid files and logs in <data dir>/run and <data dir>/logs, and the children's environment (the supervisor
    process itself is arti.supervisor.ProcessSupervisor)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.data_dir / "run"
        self.log_dir = settings.data_dir / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def state_file(self) -> Path:
        """What the supervisor process last saw (arti.supervisor.ProcessSupervisor.write_state)."""
        return self.run_dir / f"{NAME}.json"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid):
            self.pid_file(name).unlink(missing_ok=True)
            return None
        return pid

    def environment(self) -> dict[str, str]:
        p = ports(self.settings)
        env = dict(os.environ)
        # Caddy and the handlers read these from their environment: pass the settings, wherever they came from.
        env["ARTI_HTTP_PORT"], env["ARTI_HANDLERS_PORT"] = str(p["http"]), str(p["handlers"])
        env["ARTI_STUDIO_PORT"] = str(p["studio"])
        env.setdefault("ARTI_HANDLERS_UPSTREAM", f"127.0.0.1:{p['handlers']}")
        # Caddy reads its listen address from the environment: pass the setting, wherever it came from (.env too).
        env["ARTI_HTTP_BIND"] = self.settings.http_bind
        env.setdefault("XDG_DATA_HOME", str(self.settings.data_dir / "caddy-data"))
        env.setdefault("XDG_CONFIG_HOME", str(self.settings.data_dir / "caddy-config"))
        if not env.get("ARTI_ENCRYPTION_KEYS") and not self.settings.encryption_keys:
            env["ARTI_ENCRYPTION_KEYS"] = local_key_ring(self.settings.data_dir)
        return env

    def stop(self, service: Service) -> str:
        pid = self.pid(service.name)
        if pid is None:
            return "not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + service.stop_timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.pid_file(service.name).unlink(missing_ok=True)
        return "stopped"


def local_key_ring(data_dir: Path) -> str:
    """Embedded/cloud-dev convenience: a key ring generated once into <data dir>/encryption.keys (mode 600).

    Production sets ARTI_ENCRYPTION_KEYS itself; losing this file makes stored provider tokens unreadable
    (accounts then need reconnecting), so it lives beside the database it protects.
    """
    from arti.crypto import generate_key_setting

    path = data_dir / "encryption.keys"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_key_setting("local1") + "\n")
    return path.read_text().strip()


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URL we build)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def wait_healthy(settings: Settings, timeout: float = 90.0) -> dict[str, Any]:
    url = f"http://127.0.0.1:{ports(settings)['http']}/health"
    deadline = time.monotonic() + timeout
    status, body = 0, None
    while time.monotonic() < deadline:
        status, body = http_json(url)
        if status == 200:
            return body or {}
        time.sleep(0.5)
    raise ArtiError(f"the platform did not become healthy within {timeout:.0f}s: {url} answered {status} "
                    f"{json.dumps(body)}; see the logs in .arti/logs/")


def supervisor_state(settings: Settings) -> dict[str, Any] | None:
    """The supervisor's last written view (<data dir>/run/supervisor.json), or None."""
    try:
        state: dict[str, Any] = json.loads(Supervisor(settings).state_file.read_text())
    except (OSError, ValueError):
        return None
    return state


def _spawn_supervisor(settings: Settings, runtime: Supervisor) -> None:
    runtime.run_dir.mkdir(parents=True, exist_ok=True)
    runtime.log_dir.mkdir(parents=True, exist_ok=True)
    runtime.state_file.unlink(missing_ok=True)
    log_file = runtime.log_file(NAME)
    with log_file.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "arti.cli", "platform", "supervise"], cwd=PROJECT_ROOT,
                                   env=runtime.environment(), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60 + sum(s.stop_timeout for s in services(settings))
    while time.monotonic() < deadline:
        state = supervisor_state(settings)
        if state and state.get("pid") == process.pid and state.get("phase") in ("running", "failed", "stopped"):
            if state["phase"] != "running":
                process.wait(timeout=30)
                raise ArtiError(state.get("error") or f"the supervisor stopped; see {log_file}")
            return
        if process.poll() is not None:
            raise ArtiError(f"the supervisor exited at once (code {process.returncode}); see {log_file}")
        time.sleep(0.1)
    raise ArtiError(f"the supervisor did not start its processes in time; see {runtime.log_dir}")


def start_platform(settings: Settings, *, demo: bool = False) -> list[tuple[str, str]]:
    from arti.cli import embedded_cluster
    from arti.db import connect
    from arti.migrate import load_seed, migrate

    settings.check_edge_security()  # before anything starts: a refused configuration leaves nothing running
    runtime = Supervisor(settings)
    supervised = runtime.pid(NAME) is not None
    for service in services(settings):  # every port checked before anything of ours starts, Postgres included
        for port in service.ports:
            owner = None if supervised or runtime.pid(service.name) else port_owner(port)
            if owner:
                raise ArtiError(f"port {port} (for {service.name}) is already in use by {owner}; stop it "
                                f"or choose another port (see .env.example)")
    steps: list[tuple[str, str]] = []
    if settings.mode == "embedded":
        cluster: LocalCluster = embedded_cluster(settings)
        steps.append(("postgres", "started" if cluster.start() else "already running"))
    with connect(settings.database_url(), autocommit=True) as conn:
        report = migrate(conn, settings.migrations_dir)
        steps.append(("migrations", f"{len(report.applied)} applied"))
        if demo:
            ran = load_seed(conn, settings.migrations_dir.parent / "seed.sql", PROJECT_ROOT)
            steps.append(("demo data", "loaded" if ran else "already loaded (same seed.sql)"))
    pid = runtime.pid(NAME)
    if pid is not None:
        steps.append((NAME, f"already running (pid {pid})"))
        children = (supervisor_state(settings) or {}).get("children", {})
        for service in services(settings):
            child = children.get(service.name)
            if children and child is None:  # e.g. ARTI_PROVIDER_SANDBOX=1 given to a platform started without it
                steps.append((service.name, "not started by the running supervisor: ./stop-platform.sh, then start "
                                            "again"))
                continue
            child = child or {}
            steps.append((service.name, "already running" if child.get("state") == "running" else
                          f"{child.get('state', 'unknown')} (the supervisor restarts it; `arti platform status`)"))
    else:
        _spawn_supervisor(settings, runtime)
        steps.append((NAME, f"started (pid {runtime.pid(NAME)})"))
        steps.extend((service.name, "started") for service in services(settings))
    wait_healthy(settings)
    steps.append(("health", "200"))
    return steps


def stop_platform(settings: Settings) -> list[tuple[str, str]]:
    """Stop the supervisor (which stops its children in reverse order), anything left, then Postgres."""
    runtime = Supervisor(settings)
    running = {service.name for service in services(settings) if runtime.pid(service.name)}
    sandbox_left = not settings.sandbox_active and runtime.pid(SANDBOX) is not None  # started with the setting
    steps: list[tuple[str, str]] = []
    pid = runtime.pid(NAME)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15 + sum(s.stop_timeout for s in services(settings))
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        runtime.pid_file(NAME).unlink(missing_ok=True)
    for service in reversed(services(settings)):
        # Whatever is still running (a supervisor killed -9 leaves its children) is stopped here.
        runtime.stop(service)
        steps.append((service.name, "stopped" if service.name in running else "not running"))
    if sandbox_left:
        # Started with ARTI_PROVIDER_SANDBOX=1, stopped without it: its supervisor stopped it (or, if that one died,
        # it is stopped here).
        runtime.stop(sandbox_service(settings))
        steps.append((SANDBOX, "stopped"))
    steps.append((NAME, "stopped" if pid is not None else "not running"))
    if settings.mode == "embedded":
        from arti.cli import embedded_cluster

        steps.append(("postgres", "stopped" if embedded_cluster(settings).stop() else "not running"))
    return steps


def _exit_text(last_exit: dict[str, Any] | None) -> str:
    if not last_exit:
        return "-"
    if "how" in last_exit:
        return f"{last_exit['how']} at {last_exit['at']}"
    how = f"signal {last_exit['signal']}" if "signal" in last_exit else f"code {last_exit['code']}"
    return f"{how} at {last_exit['at']} after {last_exit['ran_seconds']} s"


def status_platform(settings: Settings) -> dict[str, Any]:
    """Every process (Postgres, the supervisor, its children) with pid, state, restarts and last exit; health."""
    runtime = Supervisor(settings)
    supervisor_pid = runtime.pid(NAME)
    state = supervisor_state(settings) if supervisor_pid else None
    processes: dict[str, dict[str, Any]] = {}
    if settings.mode == "embedded":
        from arti.cli import embedded_cluster

        cluster = embedded_cluster(settings).status()
        seen = (state or {}).get("postgres", {})
        processes["postgres"] = {"pid": cluster.pid, "state": "running" if cluster.running else "stopped",
                                 "restarts": seen.get("restarts"), "last_exit": seen.get("last_exit")}
    else:
        processes["postgres"] = {"pid": None, "state": "remote", "restarts": None, "last_exit": None}
    processes[NAME] = {"pid": supervisor_pid, "state": "running" if supervisor_pid else "stopped",
                       "restarts": None, "last_exit": None,
                       "started_at": (state or {}).get("started_at")}
    children = (state or {}).get("children", {})
    names = [service.name for service in services(settings)]
    if SANDBOX not in names and (SANDBOX in children or runtime.pid(SANDBOX)):
        names.insert(0, SANDBOX)  # started with ARTI_PROVIDER_SANDBOX=1, asked about without it
    for name in names:
        child = children.get(name)
        pid = runtime.pid(name)
        if child is None:  # no supervisor: a daemon left by an older start, or nothing
            processes[name] = {"pid": pid, "state": "running (unsupervised)" if pid else "stopped",
                               "restarts": None, "last_exit": None}
        else:
            processes[name] = {**child, "pid": child.get("pid") or pid}
    for entry in processes.values():
        entry["last_exit_text"] = _exit_text(entry.get("last_exit"))
    return {"processes": processes,
            "logs": {"dir": str(runtime.log_dir), "max_bytes": settings.log_max_bytes,
                     "backups": settings.log_backups},
            "health": http_json(f"http://127.0.0.1:{ports(settings)['http']}/health")}
