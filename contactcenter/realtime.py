"""Real-time: best-effort pushes to Channels groups, numbered per stream, and the sockets' shared behaviour.

Pushes (`notify()`, from synchronous code: projectors, services after commit)
-----------------------------------------------------------------------------
A projector must never wait for Redis: `notify()` hands the messages to one
background thread that owns an event loop and the channel layer's
connections, and returns at once. A message that cannot be delivered is
logged and dropped: WebSocket clients resync over REST.

Each group is a *stream* (an agent's desk, the wallboard, one customer's
timeline), and every push on it carries `"stream"` and `"seq"`: a counter in
Redis, next to the group, taken (INCRBY) when the message is sent. So a
message lost anywhere after that — a failed send, the channel layer dropping
it for a socket over its capacity, a Redis restart — leaves a gap the client
sees: any `seq` other than the last one plus one means "resync over REST"
(README, "Real-time contract"). A counter kept by each socket could not see
those losses; it only counts what arrived. The pushes of one process to one
stream leave in `seq` order (a lock per stream); two processes pushing to one
stream at once may cross, which a client sees as a gap and answers with one
resync more than needed: harmless.

Sockets (StreamConsumer)
------------------------
Every socket: a user from a ticket (4401 without), the streams it may follow
(4403 if none), a welcome with each stream's current `seq`, client messages
capped at WS_MAX_MESSAGE_BYTES (1009), and every WS_GROUP_REFRESH_SECONDS a
check that it is still in its groups (they live in Redis: after a Redis
restart a socket would hear nothing, silently). Finding itself gone, it joins
again and sends a new welcome, which tells its client to resync. A socket
whose channel layer loses its Redis connection (Redis restarting) is closed
with 4503 rather than crashing: its client comes back with a new ticket once
Redis is there again, and starts from a welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import Counter

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contactcenter.auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED

log = logging.getLogger(__name__)

CLOSE_TOO_BIG = 1009  # RFC 6455: a message too big to process
CLOSE_TRY_AGAIN = 4503  # the channel layer lost Redis: reconnect (a new ticket) with backoff

# --- stream counters ---------------------------------------------------------------------------------------

_local_seq: Counter = Counter()  # layers without Redis (the in-memory layer of a single process)


def _redis_of(layer, group: str):
    """The Redis connection (for this event loop) that holds `group`, or None for a layer without Redis.

    channels_redis keeps a group on one shard (consistent hash of its name); its counter lives beside it.
    """
    if hasattr(layer, "connection") and hasattr(layer, "consistent_hash") and hasattr(layer, "_group_key"):
        return layer.connection(layer.consistent_hash(group))
    return None


def _seq_key(layer, group: str) -> str:
    return f"{getattr(layer, 'prefix', 'asgi')}:seq:{group}"


async def seq_reserve(layer, group: str, n: int) -> int:
    """Take `n` consecutive numbers of the stream's counter; returns the first."""
    redis = _redis_of(layer, group)
    if redis is None:
        _local_seq[group] += n
        return _local_seq[group] - n + 1
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incrby(_seq_key(layer, group), n)
        pipe.expire(_seq_key(layer, group), settings.WS_SEQ_TTL_SECONDS)
        last, _ = await pipe.execute()
    return int(last) - n + 1


async def seq_current(layer, group: str) -> int:
    """The stream's last `seq` (0 before its first push, or after Redis lost it)."""
    redis = _redis_of(layer, group)
    if redis is None:
        return _local_seq[group]
    return int(await redis.get(_seq_key(layer, group)) or 0)


async def rejoin(layer, group: str, channel: str) -> bool:
    """Join `group` again (refreshing the membership's age); True when the membership had been lost."""
    redis = _redis_of(layer, group)
    if redis is None:
        await layer.group_add(group, channel)
        return False
    # What channels_redis's group_add does (a scored set per group, with an expiry), in one round trip, and
    # ZADD says whether the channel was missing from the set.
    key = layer._group_key(group)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(key, {channel: time.time()})
        pipe.expire(key, layer.group_expiry)
        added, _ = await pipe.execute()
    return bool(added)


def ordering(message: dict) -> dict:
    """The `stream` and `seq` of a pushed message, for a consumer that sends a message of its own in its place."""
    return {k: message[k] for k in ("stream", "seq") if k in message}


# --- pushes from synchronous code ----------------------------------------------------------------------------

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_stream_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _ensure_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="channels-notifier", daemon=True).start()
        return _loop


_PARALLEL = 8  # streams sent to at once: a batch of a hundred must not open a hundred Redis connections


def _stream_lock(group: str) -> asyncio.Lock:
    lock = _stream_locks.get(group)
    if lock is None:
        lock = _stream_locks[group] = asyncio.Lock()
    return lock


async def _once_more(call):
    """Run `call()`, and once more if the connection broke: after a Redis restart the pool still holds
    connections to the old server, and each fails once before a new one is made. (Sent twice at worst: the
    same seq twice, which a client answers with one resync.)"""
    try:
        return await call()
    except (RedisConnectionError, RedisTimeoutError):
        return await call()


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    streams: dict[str, list[dict]] = {}
    for group, msg in messages:
        streams.setdefault(group, []).append(msg)
    gate = asyncio.Semaphore(_PARALLEL)

    async def send(group: str, msgs: list[dict]) -> None:
        # Numbered and sent under the stream's lock: this process's pushes to one stream leave in seq order.
        async with _stream_lock(group), gate:
            first = await _once_more(lambda: seq_reserve(layer, group, len(msgs)))
            for i, msg in enumerate(msgs):
                numbered = {**msg, "stream": group, "seq": first + i}
                await _once_more(lambda numbered=numbered: layer.group_send(group, numbered))

    results = await asyncio.gather(*(send(group, msgs) for group, msgs in streams.items()), return_exceptions=True)
    for group, result in zip(streams, results, strict=True):
        if isinstance(result, Exception):
            log.warning("push to %s failed: %s", group, result)


def notify(messages: list[tuple[str, dict]]) -> asyncio.Future | None:
    """Queue (group, message) pushes; returns a future only tests need to wait on."""
    if not messages:
        return None
    return asyncio.run_coroutine_threadsafe(_send_all(messages), _ensure_loop())


# --- sockets ----------------------------------------------------------------------------------------------------


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """A socket that follows one or more streams (Channels groups): the shared half of every consumer.

    Subclasses say which streams a user may follow (`streams_for`) and which
    REST reads resync them (`resync_for`), and handle their message types.
    Their `connect` and `disconnect` call `open_streams` and `close_streams`.
    """

    streams: list[str] = ()

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except RedisError as exc:  # the channel layer's Redis went away under this socket
            log.warning("socket %s: the channel layer lost Redis (%s); closing with %d", getattr(
                self, "channel_name", "?"), exc, CLOSE_TRY_AGAIN)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
            with contextlib.suppress(Exception):
                await self.disconnect(CLOSE_TRY_AGAIN)  # leave the groups (if Redis is back), count it closed

    async def streams_for(self, user) -> list[str] | None:
        """The streams this user may follow on this socket; None or [] closes it with 4403. Subclasses say."""
        return None

    def resync_for(self) -> list[str]:
        """The REST reads that hold the truth the streams hint at (sent in the welcome)."""
        return []

    async def open_streams(self) -> bool:
        """Authenticate, authorise, join, accept, welcome. False when the socket was refused (closed)."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        streams = await self.streams_for(user)
        if not streams:
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        self.streams = list(streams)
        for group in self.streams:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept(subprotocol=self.scope.get("ws_subprotocol"))
        # Joined first, then the counters read: every push numbered after the welcome's seq reaches this socket.
        await self.welcome()
        self._watch = asyncio.create_task(self._stay_joined())
        return True

    async def close_streams(self) -> None:
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.cancel()
        for group in self.streams:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # Redis away: the membership goes with it, or expires
                log.info("could not leave %s", group, exc_info=True)

    async def welcome(self, *, rejoined: bool = False) -> None:
        """{"type": "welcome", "seq": {stream: last seq}, "resync": [REST reads]}: start here, read REST now."""
        seq = {group: await seq_current(self.channel_layer, group) for group in self.streams}
        message = {"type": "welcome", "seq": seq, "resync": self.resync_for()}
        if rejoined:
            message["rejoined"] = True  # pushes were lost while this socket was out of its groups
        await self.send_json(message)

    async def _stay_joined(self) -> None:
        while True:
            await asyncio.sleep(settings.WS_GROUP_REFRESH_SECONDS)
            try:
                lost = [group for group in self.streams if await rejoin(self.channel_layer, group, self.channel_name)]
                if lost:
                    log.info("socket %s was out of %s (Redis restarted?): joined again", self.channel_name, lost)
                    await self.welcome(rejoined=True)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: try again next time (the socket's own receive fails if it stays away)
                log.warning("could not refresh the groups of socket %s", self.channel_name, exc_info=True)

    async def receive(self, text_data=None, bytes_data=None):
        """Clients have nothing to say on these sockets; a message over WS_MAX_MESSAGE_BYTES closes with 1009.

        Nothing a client sends is parsed. (Under daphne the server itself refuses an oversized message first:
        contactcenter/asgi.py.)
        """
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_BIG)

    async def forward(self, message):
        await self.send_json(message)
