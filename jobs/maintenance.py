"""Upkeep: re-queue jobs left by dead workers (at worker start and every two minutes)."""

from __future__ import annotations

import logging

import procrastinate
import psycopg

from arti.settings import get_settings
from jobs.app import app

logger = logging.getLogger(__name__)


async def requeue_stalled(worker_app: procrastinate.App, seconds: float, *, skip_job_id: int | None = None) -> int:
    """Put the running jobs of workers silent for `seconds` back in the queue. Returns how many."""
    manager = worker_app.job_manager
    await manager.prune_stalled_workers(seconds_since_heartbeat=seconds)
    count = 0
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=seconds):
        if job.id is None or job.id == skip_job_id:
            continue
        try:
            await manager.retry_job(job)
        except procrastinate.exceptions.UniqueViolation:
            # A job with the same queueing lock is already waiting (e.g. the next drain of a webhook
            # endpoint): it does this one's work, so this one is closed instead of waiting twice.
            await manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
            logger.warning("closed job %s (%s) of a dead worker: job %s waits in its place", job.id, job.task_name,
                           job.queueing_lock)
            continue
        except procrastinate.exceptions.ConnectorException as exc:
            if isinstance(exc.__cause__, psycopg.OperationalError):
                raise
            # Another worker's sweep re-queued it first (it is no longer `doing`): nothing left to do.
            logger.info("job %s (%s) was re-queued meanwhile by another worker", job.id, job.task_name)
            continue
        count += 1
        logger.warning("re-queued job %s (%s) of a dead worker", job.id, job.task_name)
    return count


@app.periodic(cron="*/2 * * * *", periodic_id="retry_stalled_jobs")
@app.task(name="retry_stalled_jobs", queue="maintenance", queueing_lock="retry_stalled_jobs", pass_context=True)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> int:
    """Periodic sweep for jobs of dead workers."""
    own = context.job.id if context.job else None
    return await requeue_stalled(context.app, get_settings().stalled_worker_seconds, skip_job_id=own)
