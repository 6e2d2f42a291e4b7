"""A fair share of Gradio's queue for each client."""
from __future__ import annotations

import logging

from .guards import client_key

log = logging.getLogger("rag.app")  # (the chat's log lines keep the name they always had)

BUSY = "the server is busy ({why}); try again in a minute"


def limit_queue(demo, per_client: int) -> None:
    """Refuse a new queued request from a client (signed-in user, else address) that already
    has `per_client` requests waiting or running, as Gradio refuses one when the whole queue is
    full: HTTP 503, which the page shows as "busy, try again" and gradio_client raises."""
    queue = demo._queue
    push = queue.push

    def owner(event) -> str:
        return client_key(event.username, getattr(event.request, "client", None))

    async def fair_push(body, request, username):
        key = client_key(username, request.client)
        if queue.max_size is not None and len(queue) >= queue.max_size:
            return False, BUSY.format(why=f"{len(queue)} requests waiting"), "queue_full"
        if per_client:
            waiting = [e for q in queue.event_queue_per_concurrency_id.values() for e in q.queue]
            running = [e for job in queue.active_jobs if job for e in job]
            mine = sum(owner(e) == key for e in waiting + running)
            if mine >= per_client:
                log.info("refused a request from %s: %d already queued", key, mine)
                return False, BUSY.format(why=f"you have {mine} requests waiting, the most one "
                                                f"client may have"), "queue_full"
        return await push(body, request, username)

    queue.push = fair_push
