"""The supervisor (arti/supervisor.py) with real child processes: restarts with backoff and a cap, exits recorded,
leftovers of a dead supervisor stopped, everything stopped at the end; log rotation; the worker's one-line retries.

No database: the children are small Python processes, and Postgres is absent (its watch reports it stopped).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arti import supervisor
from arti.platform import Service
from arti.settings import Settings
from arti.supervisor import ProcessSupervisor, backoff_seconds, rotate

STEADY = Service("steady", [sys.executable, "-c", "import time; time.sleep(120)"], (), 5.0)
FLAKY = Service("flaky", [sys.executable, "-c", "import time; time.sleep(0.8); raise SystemExit(3)"], (), 5.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ARTI_DATA_DIR=str(tmp_path), ARTI_ENCRYPTION_KEYS="unused:AAAA",  # type: ignore[call-arg]
                    ARTI_LOG_MAX_BYTES="20000", ARTI_LOG_BACKUPS="2", _env_file=None)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_BASE", 0.3)
    monkeypatch.setattr(supervisor, "BACKOFF_MAX", 0.6)


@pytest.fixture
def supervised(settings: Settings) -> Iterator[ProcessSupervisor]:
    sup = ProcessSupervisor(settings, [STEADY, FLAKY])
    sup.runtime.run_dir.mkdir(parents=True, exist_ok=True)
    sup.runtime.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield sup
    finally:
        sup.stop_all()


def run_for(sup: ProcessSupervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sup.tick():
            sup.write_state()
        time.sleep(0.05)


def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    assert [backoff_seconds(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_child_that_exits_is_restarted_with_growing_backoff_and_counted(supervised: ProcessSupervisor,
                                                                          fast_backoff: None) -> None:
    assert supervised.start_all()
    steady, flaky = supervised.children
    first = steady.pid
    run_for(supervised, 6.0)
    assert flaky.restarts >= 3, flaky.history
    assert all(e["code"] == 3 for e in flaky.history) and len(flaky.history) >= flaky.restarts
    # 0.3 s, then 0.6 s (the cap) between exit and the next start
    assert flaky.quick_exits >= 3 and supervisor.backoff_seconds(flaky.quick_exits) == 0.6
    assert steady.pid == first and steady.restarts == 0 and steady.last_exit is None
    state = json.loads(supervised.state_file.read_text())
    assert state["children"]["flaky"]["restarts"] == flaky.restarts
    assert state["children"]["flaky"]["last_exit"]["code"] == 3
    assert state["children"]["steady"]["state"] == "running"
    assert state["postgres"]["state"] == "stopped"


def test_a_killed_child_comes_back_with_its_signal_recorded(supervised: ProcessSupervisor) -> None:
    assert supervised.start_all()
    steady = supervised.children[0]
    first = steady.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    run_for(supervised, 2.0)  # first backoff: 1 s
    assert steady.pid not in (None, first) and steady.restarts == 1
    assert steady.last_exit is not None and steady.last_exit["signal"] == "SIGKILL"
    assert int(supervised.runtime.pid_file("steady").read_text()) == steady.pid


def test_stop_all_leaves_nothing_running(supervised: ProcessSupervisor) -> None:
    assert supervised.start_all()
    pids = [c.pid for c in supervised.children]
    supervised.stop_all()
    for pid in pids:
        assert pid is not None and not supervisor.alive(pid)
    assert not list(supervised.runtime.run_dir.glob("*.pid"))


def test_a_child_left_by_a_dead_supervisor_is_stopped_first(supervised: ProcessSupervisor,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    orphan = subprocess.Popen(STEADY.argv, start_new_session=True)
    supervised.runtime.pid_file("steady").write_text(str(orphan.pid))
    try:
        assert supervised.start_all()
        orphan.wait(timeout=10)  # stopped (and reaped by the supervisor, which found it running)
        assert "left running by an earlier supervisor" in caplog.text
        assert supervised.children[0].pid != orphan.pid
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_a_child_that_exits_at_once_fails_the_first_start(settings: Settings) -> None:
    broken = Service("broken", [sys.executable, "-c", "raise SystemExit(7)"], (), 5.0)
    sup = ProcessSupervisor(settings, [STEADY, broken])
    sup.runtime.run_dir.mkdir(parents=True, exist_ok=True)
    sup.runtime.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        assert not sup.start_all()
        assert sup.error is not None and sup.error.startswith("broken exited at once (code 7)")
    finally:
        sup.stop_all()
    assert not list(sup.runtime.run_dir.glob("*.pid"))


def test_rotation_copies_then_truncates_and_keeps_the_generations(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("ab") as writer:  # a child's descriptor: append mode, kept open across rotations
        for generation in range(4):
            writer.write(f"generation {generation}\n".encode() * 200)
            writer.flush()
            assert rotate(log, max_bytes=1000, backups=2)
            assert log.stat().st_size == 0
        writer.write(b"after\n")
        writer.flush()
    assert log.read_bytes() == b"after\n", "the writer goes on at the start of the emptied file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker.log", "worker.log.1", "worker.log.2"]
    assert (tmp_path / "worker.log.1").read_text().startswith("generation 3")
    assert (tmp_path / "worker.log.2").read_text().startswith("generation 2")
    assert not rotate(log, max_bytes=1000, backups=2), "small files are left alone"


def test_the_supervisor_rotates_its_childrens_logs(supervised: ProcessSupervisor) -> None:
    path = supervised.log_file("steady")
    path.write_bytes(b"x" * 50_000)
    supervised.rotate_logs(force=True)
    assert path.stat().st_size == 0 and path.with_name("steady.log.1").stat().st_size == 50_000


def test_expected_retries_are_one_line_and_real_errors_keep_their_traceback() -> None:
    from jobs.webhooks import RetryLater
    from jobs.worker import ExpectedRetriesOnOneLine

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ExpectedRetriesOnOneLine())

    def formatted(exc: BaseException, action: str) -> str:
        try:
            raise exc
        except BaseException as raised:  # a record as procrastinate's worker makes it
            record = logging.getLogger("procrastinate.worker").makeRecord(
                "procrastinate.worker", logging.INFO, __file__, 1,
                "Job %s ended with status: Error, to retry, lasted 0.010 s", ("drain[7]",), (type(raised), raised,
                                                                                       raised.__traceback__),
                extra={"action": action})
        for f in handler.filters:
            f.filter(record)  # type: ignore[union-attr]
        return handler.format(record)

    import datetime as dt

    retry = formatted(RetryLater(dt.datetime.now(dt.UTC), "delivery d: HTTP 503; retrying"), "job_error_retry")
    assert retry == ("INFO procrastinate.worker: Job drain[7] ended with status: Error, to retry, lasted 0.010 s "
                     "(RetryLater: delivery d: HTTP 503; retrying)")
    real = formatted(ValueError("a bug"), "job_error_retry")
    assert "Traceback (most recent call last)" in real and "ValueError: a bug" in real
    gave_up = formatted(RetryLater(dt.datetime.now(dt.UTC), "x"), "job_error")
    assert "Traceback" in gave_up
