"""The worker's Celery consumer: Celery's own, with its handling of a lost broker connection
made safe for a worker that holds messages.

When the connection to Redis breaks, Celery's consumer first collects the broken connection
(which detaches its transport) and then closes it. Closing the connection's channel gives
the messages the worker still holds back to Redis through that detached transport, which
raises ``AttributeError``; Celery does not expect it, calls it an unrecoverable error and the
worker exits - on a Redis restart or a network blip, exactly when a worker should reconnect.
Here that close is contained: the worker logs it and reconnects, and the messages it held
stay unacknowledged in Redis, where the heartbeat reclaim (``reclaim``) or the worker's own
redelivery gives them back.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

_log = logging.getLogger("crystallize_dist.worker")


def contain_close(connection: Any) -> None:
    """Make ``connection.close()`` log the AttributeError of a detached transport instead of
    raising it (other errors go to Celery as before)."""
    close = connection.close

    def close_detached() -> None:
        try:
            close()
        except AttributeError as err:  # the detached transport, see the module docstring
            _log.warning("closing the lost broker connection: %s; reconnecting", err)

    connection.close = close_detached


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer (see the module docstring)."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        if self.connection is not None:
            contain_close(self.connection)
        super().on_connection_error_after_connected(exc)
