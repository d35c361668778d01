"""The real HTTP edge for attack tests: the handlers served by uvicorn (`python -m handlers`) behind Caddy.

`EdgeStack(env).start()` runs both as separate processes on free loopback ports, against the tests' database
(embedded mode pointed at the test cluster's port), with the project's own Caddyfile. A request to
`stack.url(path)` therefore crosses exactly what a client's request crosses: Caddy's routing, headers and
limits, uvicorn's HTTP parsing, the app. Nothing else of the environment reaches the processes (`child_env`),
so a developer's own configuration never decides a test.

Providers are faked at their HTTP boundary through ARTI_PROVIDER_GATEWAY (see tests/fake_providers.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from arti.localdb import socket_inodes, tcp_listeners
from arti.settings import PROJECT_ROOT
from tests.harness import child_env

PROVIDER_CREDENTIALS = {
    f"{name.upper()}_{part}": f"{name}-{part.lower()}-value"
    for name in ("spotify", "youtube", "instagram", "soundcloud", "tiktok")
    for part in ("CLIENT_ID", "CLIENT_SECRET")
}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StackFailed(AssertionError):
    """A process of the stack did not come up; carries what it printed."""


class EdgeStack:
    """uvicorn (handlers) + Caddy, started and stopped by the test; see the module docstring."""

    def __init__(self, db_port: int, **env: str) -> None:
        self.handlers_port = free_port()
        self.http_port = free_port()
        self.studio_port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="arti-edge-"))
        self.env = child_env(
            ARTI_MODE="embedded",
            ARTI_DB_PORT=str(db_port),
            ARTI_DATA_DIR=str(self._dir),
            ARTI_HTTP_PORT=str(self.http_port),
            ARTI_HANDLERS_PORT=str(self.handlers_port),
            ARTI_STUDIO_PORT=str(self.studio_port),
            ARTI_HANDLERS_UPSTREAM=f"127.0.0.1:{self.handlers_port}",
            XDG_DATA_HOME=str(self._dir / "caddy-data"),
            XDG_CONFIG_HOME=str(self._dir / "caddy-config"),
            **PROVIDER_CREDENTIALS,
        )
        self.env.update(env)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- processes -----------------------------------------------------------------------------------------
    def log(self, name: str) -> str:
        path = self._dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = (self._dir / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes[name] = process
        return process

    def _wait(self, name: str, url: str, timeout: float) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackFailed(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise StackFailed(f"{name} did not answer {url} within {timeout}s:\n{self.log(name)}")

    def start_handlers(self, timeout: float = 30.0) -> EdgeStack:
        self._spawn("handlers", [sys.executable, "-m", "handlers", "--host", "127.0.0.1",
                                 "--port", str(self.handlers_port), "--log-level", "warning"])
        self._wait("handlers", f"http://127.0.0.1:{self.handlers_port}/functions/v1/health/live", timeout)
        return self

    def start_caddy(self, timeout: float = 30.0) -> EdgeStack:
        self._spawn("caddy", ["caddy", "run", "--config", str(PROJECT_ROOT / "Caddyfile"), "--adapter", "caddyfile"])
        self._wait("caddy", f"http://127.0.0.1:{self.http_port}/health/caddy", timeout)
        return self

    def start(self) -> EdgeStack:
        try:
            return self.start_handlers().start_caddy()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, 15)
                    process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, 9)
                    process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EdgeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests -------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """`path` on Caddy's API listener, as a client reaches it."""
        return f"http://127.0.0.1:{self.http_port}{path}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client whose relative URLs go through Caddy."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30.0, **kwargs)


def run_handlers_once(db_port: int, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m handlers` with `env` until it exits or `timeout` passes (then it is stopped): for
    configurations the process must refuse before listening."""
    stack = EdgeStack(db_port, **env)
    try:
        return subprocess.run([sys.executable, "-m", "handlers", "--host", "127.0.0.1",
                               "--port", str(stack.handlers_port)],
                              cwd=PROJECT_ROOT, env=stack.env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the handlers kept running with {env}: {exc.stdout!r} {exc.stderr!r}") from None
    finally:
        stack.stop()


def listening_sockets(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP socket in LISTEN state owned by one of `pids` (from /proc)."""
    owners = {inode: pid for pid in pids for inode in socket_inodes(pid)}
    return [(address, port, owners[inode]) for address, port, inode in tcp_listeners() if inode in owners]


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, []))
    return found
