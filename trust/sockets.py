"""Agent desk sockets that follow the real-time contract (README, "Real-time contract"), many at once.

Each client: a ticket from `POST /api/v1/ws-tickets/` (its agent's Bearer token), `/ws/agent/?ticket=...`,
a welcome (each stream's current `seq`), pushes numbered per stream; on any close a new ticket and a
reconnect after a growing, jittered pause (0.5 s doubling to 30 s, back to 0.5 s after a welcome). It
records everything with the time it happened, so a scenario can tell who connected when, which pushes
came, and which `seq` numbers never did.

All clients share one asyncio loop in a thread of their own; the ticket requests run on a thread pool
(http.client), at most `parallel` handshakes at a time, as a fleet of desks opening after a restart would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Client:
    name: str
    token: str
    port: int
    welcomes: list[tuple[float, dict, bool]] = field(default_factory=list)  # (when, seq by stream, rejoined)
    pushes: list[tuple[float, str, str, int]] = field(default_factory=list)  # (when, type, stream, seq)
    closes: list[tuple[float, int | None]] = field(default_factory=list)  # (when, close code; None: refused)
    ticket_failures: list[tuple[float, int | str]] = field(default_factory=list)
    connected: bool = False

    def welcomed_after(self, t: float) -> float | None:
        return next((w[0] for w in self.welcomes if w[0] >= t), None)

    def seq_report(self, stream: str, final_seq: int) -> dict:
        """What this socket's numbers say about `stream`: pushes received, numbers skipped (revealed losses,
        mid-stream, at a reconnect's welcome, or against the stream's final number), numbers seen twice."""
        events = sorted([(w[0], "welcome", w[1].get(stream, 0)) for w in self.welcomes]
                        + [(p[0], "push", p[3]) for p in self.pushes if p[2] == stream])
        last = None
        first = None
        received = skipped = repeated = 0
        for _, kind, seq in events:
            if kind == "welcome":
                if first is None:
                    first = seq
                elif last is not None and seq > last:
                    skipped += seq - last  # pushes while away: the welcome's number reveals them
                last = seq if last is None else max(last, seq)
                continue
            received += 1
            if last is not None and seq <= last:
                repeated += 1
                continue
            if last is not None:
                skipped += seq - last - 1
            last = seq
        if last is not None and final_seq > last:
            skipped += final_seq - last
        return {"first": first or 0, "last": last or 0, "received": received, "skipped": skipped,
                "repeated": repeated}


class Fleet:
    def __init__(self, clients: list[Client], *, parallel: int = 50, path: str = "/ws/agent/"):
        self.clients = clients
        self.parallel = parallel
        self.path = path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="fleet-http")
        self._tasks: list = []

    def start(self) -> Fleet:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.set_default_executor(self._pool)
            self._stop = asyncio.Event()
            self._gate = asyncio.Semaphore(self.parallel)
            self._tasks = [self._loop.create_task(self._run(c)) for c in self.clients]
            ready.set()
            self._loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))

        self._thread = threading.Thread(target=run, name="trust-fleet", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def connected(self) -> int:
        return sum(1 for c in self.clients if c.connected)

    def wait_connected(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected() >= n:
                return True
            time.sleep(0.2)
        return self.connected() >= n

    # --- one desk ------------------------------------------------------------------------------------------

    def _ticket(self, c: Client) -> tuple[int | str, str | None]:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=15)
            conn.request("POST", "/api/v1/ws-tickets/", body=b"{}",
                         headers={"Authorization": f"Bearer {c.token}", "Content-Type": "application/json",
                                  "Host": "127.0.0.1"})
            r = conn.getresponse()
            body = r.read()
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return f"error {type(exc).__name__}", None
        if r.status != 201:
            return r.status, None
        return r.status, json.loads(body)["ticket"]

    async def _run(self, c: Client) -> None:
        import websockets

        loop = asyncio.get_running_loop()
        pause = 0.5
        while not self._stop.is_set():
            async with self._gate:  # tickets and handshakes, a bounded number at a time
                status, ticket = await loop.run_in_executor(None, self._ticket, c)
                socket = None
                if ticket is None:
                    c.ticket_failures.append((time.monotonic(), status))
                else:
                    try:
                        socket = await websockets.connect(f"ws://127.0.0.1:{c.port}{self.path}?ticket={ticket}",
                                                          open_timeout=15, max_size=2 ** 20)
                    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                        c.closes.append((time.monotonic(), None))
            if socket is not None:
                welcomed = len(c.welcomes)
                try:
                    await self._listen(c, socket)
                    if len(c.welcomes) > welcomed:
                        pause = 0.5  # this connection got its welcome: start the backoff over
                finally:
                    c.connected = False
                    await socket.close()
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), pause * (0.5 + random.random()))
            except asyncio.TimeoutError:
                pass
            pause = min(pause * 2, 30.0)

    async def _listen(self, c: Client, socket) -> None:
        import websockets

        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                recv = asyncio.ensure_future(socket.recv())
                done, _ = await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    recv.cancel()
                    return
                try:
                    raw = recv.result()
                except websockets.exceptions.ConnectionClosed as exc:
                    c.closes.append((time.monotonic(), exc.rcvd.code if exc.rcvd else 1006))
                    return
                now = time.monotonic()
                msg = json.loads(raw)
                if msg.get("type") == "welcome":
                    c.welcomes.append((now, dict(msg.get("seq") or {}), bool(msg.get("rejoined"))))
                    c.connected = True
                elif "seq" in msg:
                    c.pushes.append((now, str(msg.get("type")), str(msg.get("stream")), int(msg["seq"])))
        finally:
            stop.cancel()
