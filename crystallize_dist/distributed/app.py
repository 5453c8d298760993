"""The Celery app, built from Settings: JSON only, late acks, prefetch 1, no result backend."""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery

from crystallize_dist import constants as C
from crystallize_dist.config import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration crystallize-dist runs with (see DESIGN.md section 5)."""
    vt = int(settings.visibility_timeout)
    transport = {
        "visibility_timeout": vt,
        # kombu sweeps for expired unacked messages every interval x throttle seconds
        # (default 10 x 10): sweep every few seconds so a lost worker's cells come back
        # within about visibility_timeout + this interval.
        "unacked_restore_interval": max(1.0, min(10.0, vt / 5)),
        "unacked_restore_throttle": 1,
    }
    return {
        # JSON on the wire, both ways; a pickled message is refused, never loaded.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # At-least-once: ack after the cell is recorded; a lost worker's message comes back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The Redis visibility timeout, in all three places Celery reads it; it must be
        # longer than the cell time limit or running cells are delivered twice.
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "visibility_timeout": vt,
        # Cells write records to the run store; tasks return nothing.
        "task_ignore_result": True,
        "result_backend": None,
        "task_store_errors_even_if_ignored": False,
        "task_default_queue": settings.queue,
        "task_soft_time_limit": settings.task_limits()[0],
        "task_time_limit": settings.task_limits()[1],
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # Celery's consumer, made to reconnect when a lost connection fails to close
        "worker_consumer": "crystallize_dist.distributed.consumer:Consumer",
    }


@functools.lru_cache(maxsize=16)
def app_for(settings: Settings) -> Celery:
    """The (cached) app for ``settings``: publishing reuses its connection pool."""
    return create_app(settings)


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: from the environment), with our task."""
    from crystallize_dist.distributed.tasks import register_tasks

    settings = settings or Settings.from_env()
    app = Celery("crystallize_dist", broker=settings.broker_url, set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.task_routes = {C.TASK_RUN_CELLS: {"queue": settings.queue}}
    register_tasks(app, settings)
    return app
