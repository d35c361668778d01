"""`arti platform supervise`: the process that owns the handlers, the worker and Caddy.

`arti platform start` starts it, detached (its pid in <data dir>/run/supervisor.pid), once Postgres runs and
the migrations are applied. It starts the three children, each in its own process group with its pid file
(<data dir>/run/<name>.pid) and its output in <data dir>/logs/<name>.log, and then, until SIGTERM or SIGINT:

* restarts a child that exits, whatever the reason, after a backoff: 1 s, doubling with every exit that
  follows a short run, at most 30 s; a child that ran STABLE_SECONDS starts over at 1 s. It never gives up
  (a child that cannot start, for instance while the database is being reset, is tried again every 30 s at
  most). Every exit is recorded (exit code or signal, when, after how long) and counted;
* watches Postgres without managing it (`arti db stop` means stopped): the postmaster's pid, and when it
  was seen stopping or coming back with another pid (counted as a restart);
* rotates the logs: each child's log, its own (supervisor.log) and the embedded cluster's postgres.log, each
  capped at ARTI_LOG_MAX_BYTES with ARTI_LOG_BACKUPS older generations (<name>.log.1 newest). Rotation copies
  then truncates, so the writers keep their append-mode descriptors and need no signal (a line written between
  the copy and the truncation can be lost, as with logrotate's copytruncate);
* writes what it sees to <data dir>/run/supervisor.json (atomically), which `arti platform status` reads.

On SIGTERM or SIGINT it stops the children in reverse order (Caddy, the worker, which finishes its running
jobs first, the handlers): SIGTERM to the process group, then SIGKILL after the service's stop timeout; then it
removes the pid files and exits. A child left running by a supervisor that died (kill -9) is stopped by the next
one before it starts its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arti.localdb import cmdline, port_owner
from arti.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from arti.platform import Service

log = logging.getLogger("arti.supervisor")

NAME = "supervisor"
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
STABLE_SECONDS = 30.0
"""A child that ran this long before exiting is restarted after BACKOFF_BASE again."""
STARTUP_GRACE = 0.5
"""At the first start, a child still running after this long counts as started (else: start failed)."""
POLL_SECONDS = 0.2
ROTATE_EVERY = 2.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe_exit(returncode: int) -> dict[str, Any]:
    """{"code": n} or {"signal": "SIGKILL", "signal_number": 9} from a Popen return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return {"signal": name, "signal_number": -returncode}
    return {"code": returncode}


def backoff_seconds(quick_exits: int) -> float:
    """Wait before the next start after `quick_exits` exits in a row that followed short runs (1, 2, 4 ... 30 s)."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, quick_exits - 1))


def rotate(path: Path, max_bytes: int, backups: int) -> bool:
    """Copy-then-truncate rotation of `path` when it is larger than `max_bytes`; keeps `backups` generations.

    Returns True when it rotated. Writers keep their (append-mode) descriptors: after the truncation they write at
    the start of the emptied file.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    for n in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with contextlib.suppress(OSError):
        shutil.copystat(path, path.with_name(f"{path.name}.1"))
        stat = path.stat()
        os.chown(path.with_name(f"{path.name}.1"), stat.st_uid, stat.st_gid)
    os.truncate(path, 0)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(pid: int, timeout: float) -> None:
    """SIGTERM to the process group led by `pid`, then SIGKILL after `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        if not alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass
class Child:
    """One supervised process and what happened to it."""

    name: str
    argv: list[str]
    ports: tuple[int, ...]
    stop_timeout: float
    process: subprocess.Popen[bytes] | None = None
    state: str = "stopped"  # starting | running | backoff | stopping | stopped
    restarts: int = 0
    quick_exits: int = 0
    started_at: str | None = None
    started_mono: float = 0.0
    next_start: float = 0.0
    last_exit: dict[str, Any] | None = None
    note: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state, "restarts": self.restarts, "started_at": self.started_at,
                "last_exit": self.last_exit, "next_start_in": round(max(0.0, self.next_start - time.monotonic()), 1)
                if self.state == "backoff" else None, "note": self.note, "exits": self.history[-10:]}


@dataclass
class PostgresWatch:
    """The embedded cluster's postmaster, as seen from outside (the supervisor never starts or stops it)."""

    pidfile: Path | None
    pid: int | None = None
    seen_running: bool = False
    restarts: int = 0
    since: str | None = None
    last_exit: dict[str, Any] | None = None

    def current_pid(self) -> int | None:
        if self.pidfile is None:
            return None
        try:
            pid = int(self.pidfile.read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if alive(pid) else None

    def observe(self) -> bool:
        """Update from the pid file; True when something changed."""
        pid = self.current_pid()
        if pid == self.pid:
            return False
        if self.pid is not None:
            self.last_exit = {"at": _now(), "pid": self.pid, "how": "stopped" if pid is None else "replaced"}
        if pid is not None:
            if self.seen_running:
                self.restarts += 1
            self.seen_running = True
            self.since = _now()
        self.pid = pid
        return True

    def as_json(self) -> dict[str, Any]:
        if self.pidfile is None:
            return {"pid": None, "state": "remote", "restarts": None, "started_at": None, "last_exit": None}
        return {"pid": self.pid, "state": "running" if self.pid else "stopped", "restarts": self.restarts,
                "started_at": self.since, "last_exit": self.last_exit,
                "note": "not supervised: `arti db start|stop` manage it; restarts seen by the supervisor"}


class ProcessSupervisor:
    """See the module docstring. `run()` is the daemon's main loop."""

    def __init__(self, settings: Settings, children: list[Service] | None = None) -> None:
        from arti.cli import embedded_cluster
        from arti.platform import Supervisor as Runtime
        from arti.platform import services

        self.settings = settings
        self.runtime = Runtime(settings)
        self.children = [Child(s.name, s.argv, s.ports, s.stop_timeout)
                         for s in (services(settings) if children is None else children)]
        self.cluster = embedded_cluster(settings) if settings.mode == "embedded" else None
        self.postgres = PostgresWatch(self.cluster.pidfile if self.cluster else None)
        self.stopping = False
        self.phase = "starting"
        self.error: str | None = None
        self.started_at = _now()
        self._env = self.runtime.environment()
        self._last_rotation = 0.0

    # -- files ------------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.runtime.state_file

    def log_file(self, name: str) -> Path:
        return self.runtime.log_file(name)

    def write_state(self) -> None:
        state = {"pid": os.getpid(), "phase": self.phase, "error": self.error, "started_at": self.started_at,
                 "updated_at": _now(), "log_max_bytes": self.settings.log_max_bytes,
                 "log_backups": self.settings.log_backups,
                 "backoff": {"base_seconds": BACKOFF_BASE, "max_seconds": BACKOFF_MAX,
                             "stable_seconds": STABLE_SECONDS},
                 "postgres": self.postgres.as_json(),
                 "children": {c.name: c.as_json() for c in self.children}}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    # -- children ---------------------------------------------------------------------------------------
    def _stop_leftover(self, child: Child) -> None:
        """A child of a previous supervisor that died (or of a platform started before supervision) is stopped."""
        pid = self.runtime.pid(child.name)
        if pid is None:
            return
        command = cmdline(pid)
        if command and " ".join(child.argv[1:]) not in command:
            self.runtime.pid_file(child.name).unlink(missing_ok=True)  # a recycled pid, not ours
            return
        log.warning("stopping %s (pid %s) left running by an earlier supervisor", child.name, pid)
        stop_process_group(pid, child.stop_timeout)
        self.runtime.pid_file(child.name).unlink(missing_ok=True)

    def spawn(self, child: Child) -> bool:
        for port in child.ports:
            owner = port_owner(port)
            if owner:
                child.note = f"port {port} is in use by {owner}; retrying"
                return False
        out = self.log_file(child.name).open("ab")
        try:
            child.process = subprocess.Popen(child.argv, cwd=PROJECT_ROOT, env=self._env, stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)
        except OSError as exc:
            child.note = f"could not start: {exc}"
            return False
        finally:
            out.close()
        self.runtime.pid_file(child.name).write_text(str(child.process.pid))
        child.state = "starting"
        child.note = None
        child.started_at = _now()
        child.started_mono = time.monotonic()
        log.info("%s started (pid %s)", child.name, child.process.pid)
        return True

    def _record_exit(self, child: Child, returncode: int) -> None:
        ran = time.monotonic() - child.started_mono
        child.last_exit = {**describe_exit(returncode), "at": _now(), "ran_seconds": round(ran, 1)}
        child.history.append(child.last_exit)
        child.process = None
        self.runtime.pid_file(child.name).unlink(missing_ok=True)
        child.quick_exits = 1 if ran >= STABLE_SECONDS else child.quick_exits + 1
        wait = backoff_seconds(child.quick_exits)
        child.state = "backoff"
        child.next_start = time.monotonic() + wait
        how = (f"signal {child.last_exit['signal']}" if "signal" in child.last_exit
               else f"code {child.last_exit['code']}")
        log.warning("%s exited (%s) after %.1f s; restarting in %.0f s", child.name, how, ran, wait)

    def start_all(self) -> bool:
        """The first start: every child, in order; False (and the error recorded) when one exits at once."""
        for child in self.children:
            self._stop_leftover(child)
        for child in self.children:
            if not self.spawn(child):
                self.error = f"{child.name} could not start: {child.note}"
                return False
            time.sleep(STARTUP_GRACE)
            assert child.process is not None
            if child.process.poll() is not None:
                code = child.process.returncode
                self.runtime.pid_file(child.name).unlink(missing_ok=True)
                child.process = None
                self.error = (f"{child.name} exited at once (code {code}); see "
                              f"{self.log_file(child.name)}")
                return False
            child.state = "running"
        return True

    def tick(self) -> bool:
        """One pass: reap and restart children, watch Postgres. True when the state changed."""
        changed = self.postgres.observe()
        now = time.monotonic()
        for child in self.children:
            if child.process is not None:
                code = child.process.poll()
                if code is not None:
                    self._record_exit(child, code)
                    changed = True
                elif child.state == "starting" and now - child.started_mono >= STARTUP_GRACE:
                    child.state = "running"
                    changed = True
            elif child.state == "backoff" and now >= child.next_start:
                if self.spawn(child):
                    child.restarts += 1
                else:
                    child.next_start = now + backoff_seconds(child.quick_exits)
                changed = True
        return changed

    def rotate_logs(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_rotation < ROTATE_EVERY:
            return
        self._last_rotation = now
        paths = [self.log_file(c.name) for c in self.children] + [self.log_file(NAME)]
        if self.cluster is not None:
            paths.append(self.cluster.log_file)
        for path in paths:
            try:
                if rotate(path, self.settings.log_max_bytes, self.settings.log_backups):
                    log.info("rotated %s", path.name)
            except OSError as exc:
                log.warning("could not rotate %s: %s", path, exc)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process is None:
                child.state = "stopped"
                continue
            child.state = "stopping"
            self.write_state()
            pid = child.process.pid
            stop_process_group(pid, child.stop_timeout)
            code = child.process.wait()
            log.info("%s stopped (%s)", child.name, describe_exit(code))
            child.process = None
            child.state = "stopped"
            self.runtime.pid_file(child.name).unlink(missing_ok=True)

    # -- main loop ----------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        self.runtime.run_dir.mkdir(parents=True, exist_ok=True)
        self.runtime.log_dir.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.runtime.pid_file(NAME).write_text(str(os.getpid()))
        log.info("supervisor started (pid %s): %s", os.getpid(), ", ".join(c.name for c in self.children))
        try:
            self.postgres.observe()
            self.write_state()
            if not self.start_all():
                log.error("%s", self.error)
                self.phase = "failed"
                self.stop_all()
                self.write_state()
                return 1
            self.phase = "running"
            self.write_state()
            while not self.stopping:
                if self.tick():
                    self.write_state()
                self.rotate_logs()
                time.sleep(POLL_SECONDS)
            self.phase = "stopping"
            log.info("stopping: %s", ", ".join(c.name for c in reversed(self.children)))
            self.stop_all()
            self.phase = "stopped"
            self.write_state()
            log.info("supervisor stopped")
            return 0
        finally:
            self.runtime.pid_file(NAME).unlink(missing_ok=True)


def main(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return ProcessSupervisor(settings).run()
