"""Every failed job attempt is recorded in private.job_failures (a Procrastinate worker middleware).

Procrastinate keeps a job's status, not why it failed. This middleware wraps every job the worker
runs; when the task raises, it writes the job, its arguments, the attempt number, whether the task's
retry strategy will try again, and the error (token-like URL parameters redacted), then re-raises
so Procrastinate's retry and status handling go on unchanged. If the record itself cannot be
written, that is logged and the task's own error still propagates: recording a failure never hides
it. `arti jobs --failed` reads the records.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import procrastinate
from procrastinate.middleware import AsyncCallNext

from arti.providers.base import redact

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000

RECORD_SQL = """
insert into private.job_failures
    (job_id, queue_name, task_name, task_args, attempt, will_retry, error_type, error_message, worker)
values
    (%(job_id)s, %(queue_name)s, %(task_name)s, %(task_args)s, %(attempt)s, %(will_retry)s, %(error_type)s,
     %(error_message)s, %(worker)s)
"""


def error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def error_message(exc: BaseException) -> str:
    """The message on one line, token-like query parameters redacted (a URL in an error can carry one)."""
    return redact(" ".join(str(exc).split()) or repr(exc), max_chars=MAX_MESSAGE_CHARS)


def worker_label(name: str | None) -> str:
    label = f"{socket.gethostname()}:{os.getpid()}"
    return f"{label} ({name})" if name else label


def will_retry(context: procrastinate.JobContext, exc: BaseException) -> bool:
    """What the task's own retry strategy decides for this exception (the worker asks it the same way)."""
    task = context.app.tasks.get(context.job.task_name)
    return bool(task and isinstance(exc, Exception) and task.get_retry_exception(exception=exc, job=context.job))


def failure_record(context: procrastinate.JobContext, exc: BaseException) -> dict[str, Any]:
    job = context.job
    return {
        "job_id": job.id,
        "queue_name": job.queue,
        "task_name": job.task_name,
        "task_args": dict(job.task_kwargs),
        "attempt": job.attempts + 1,
        "will_retry": will_retry(context, exc),
        "error_type": error_type(exc),
        "error_message": error_message(exc),
        "worker": worker_label(context.worker_name),
    }


async def record_failures(call_next: AsyncCallNext, context: procrastinate.JobContext, worker: Any) -> Any:
    """Worker middleware: run the job; if it raises, record the failure and re-raise."""
    try:
        return await call_next()
    except Exception as exc:
        try:
            await context.app.connector.execute_query_async(RECORD_SQL, **failure_record(context, exc))
        except Exception:
            logger.warning("could not record the failure of job %s (%s)", context.job.id, context.job.task_name,
                           exc_info=True)
        raise
