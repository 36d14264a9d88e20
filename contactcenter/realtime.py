"""Best-effort pushes to Channels groups from synchronous code (projectors).

A projector must never wait for Redis: `notify()` hands the message to one
background thread that owns an event loop and the channel layer's
connections, and returns at once. A message that cannot be delivered is
logged and dropped: WebSocket clients resync over REST with their cursor.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _ensure_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="channels-notifier", daemon=True).start()
        return _loop


_PARALLEL = 8  # sends in flight at once: a batch of a hundred must not open a hundred Redis connections


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    gate = asyncio.Semaphore(_PARALLEL)

    async def send(group: str, msg: dict) -> None:
        async with gate:
            await layer.group_send(group, msg)

    results = await asyncio.gather(*(send(group, msg) for group, msg in messages), return_exceptions=True)
    for (group, _), result in zip(messages, results, strict=True):
        if isinstance(result, Exception):
            log.warning("push to %s failed: %s", group, result)


def notify(messages: list[tuple[str, dict]]) -> asyncio.Future | None:
    """Queue (group, message) pushes; returns a future only tests need to wait on."""
    if not messages:
        return None
    return asyncio.run_coroutine_threadsafe(_send_all(messages), _ensure_loop())
