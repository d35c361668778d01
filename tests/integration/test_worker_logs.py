"""The worker's log: an expected retry is one line, a real error keeps its traceback (a real `arti worker`)."""

from __future__ import annotations

import signal
from typing import Any

import psycopg

from tests.fake_providers import FakeProviders
from tests.harness import wait_until
from tests.integration.test_sync_worker import account, fake, start_worker  # noqa: F401 (fixtures)


def test_a_sync_retried_after_a_provider_5xx_is_one_line(conn: psycopg.Connection[Any],
                                                         account: dict[str, Any],  # noqa: F811
                                                         fake: FakeProviders, start_worker: Any) -> None:  # noqa: F811
    fake.artist_status = 503  # the provider is down for a moment: the sync is retried later, by design
    worker = start_worker()
    run = conn.execute("select private.enqueue_sync(%s, 'manual') as id", (account["account"],)).fetchone()["id"]
    wait_until(lambda: conn.execute("select count(*) as n from private.job_failures where task_args ->> "
                                    "'sync_run_id' = %s and will_retry", (str(run),)).fetchone()["n"] >= 1,
               timeout=60, what="a failed attempt to be retried")
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    retries = [line for line in output.splitlines() if "ended with status: Error, to retry" in line]
    assert len(retries) == 1, output
    assert "(ProviderUnavailable: " in retries[0], retries
    assert "Traceback" not in output, output
