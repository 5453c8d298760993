"""crystallize-dist's Celery app for a *stock* ``celery`` worker (bench/submit.py checks that
such a worker consumes the messages ``publisher.enqueue`` publishes without apply_async).

    CRYSTALLIZE_DIST_BROKER_URL=redis://... CRYSTALLIZE_DIST_QUEUE=q \
        python -m celery -A stock_app worker -P prefork -c 2 -Q q
"""

from __future__ import annotations

from crystallize_dist.distributed.app import create_app

app = create_app()
