"""A small TCP fault proxy (asyncio) between our Kafka clients and the broker, steered by the trust runner.

    proxy = FaultProxy(upstream_port=9093).start()   # listens on proxy.port, forwards to 127.0.0.1:9093
    proxy.blackhole()      # a network partition: bytes vanish both ways, new connections hang
    proxy.heal()           # forward again; connections caught in the partition are closed (clients reconnect)
    proxy.delay(0.3)       # every chunk forwarded 0.3 s late, in order
    proxy.cut()            # reset every open connection now
    proxy.stop()

No fault-injection package is available here (toxiproxy and the like are separate servers), and the
faults we need are few. The broker must advertise the *proxy's* address (trust.stack.ProxiedKafka), or
clients would bootstrap through the proxy and then talk to the broker directly.

Runs its own event loop in a daemon thread; the control methods are thread-safe and return once the
change is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from contactcenter.devstack import free_port

PASS, BLACKHOLE = "pass", "blackhole"


@dataclass(eq=False)  # identity-hashed: kept in a set
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    dropping: bool = False  # in a partition: read and throw away
    tasks: list = field(default_factory=list)

    def close(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()  # RST, not a polite FIN: what a broken network or dead broker looks like


class FaultProxy:
    def __init__(self, upstream_port: int, *, port: int = 0, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.mode = PASS
        self.latency = 0.0
        self.accepted = 0
        self.refused_upstream = 0
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # --- control (any thread) ----------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="trust-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def blackhole(self) -> None:
        """Partition: every byte either way is dropped; new connections are accepted and then ignored."""
        def go():
            self.mode = BLACKHOLE
            for c in self._conns:
                c.dropping = True
        self._call(go)

    def heal(self) -> None:
        """Forward again. Connections that lost bytes in the partition are closed: their protocol state is gone."""
        def go():
            self.mode = PASS
            for c in [c for c in self._conns if c.dropping]:
                self._drop(c)
        self._call(go)

    def delay(self, seconds: float) -> None:
        def go():
            self.latency = max(0.0, seconds)
        self._call(go)

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        box = []

        def go():
            box.append(len(self._conns))
            for c in list(self._conns):
                self._drop(c)
        self._call(go)
        return box[0]

    @property
    def connections(self) -> int:
        return len(self._conns)

    # --- the loop ----------------------------------------------------------------------------------------------

    def _call(self, fn) -> None:
        done = threading.Event()

        def wrapped():
            try:
                fn()
            finally:
                done.set()
        self._loop.call_soon_threadsafe(wrapped)
        done.wait(10)

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            self._drop(c)

    def _drop(self, c: _Conn) -> None:
        c.close()
        for t in c.tasks:
            t.cancel()
        self._conns.discard(c)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        conn = _Conn(client=writer, dropping=self.mode == BLACKHOLE)
        self._conns.add(conn)
        try:
            if conn.dropping:  # accepted into the partition: swallow whatever comes until healed (aborted) or closed
                while await reader.read(65536):
                    pass
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
            except (OSError, asyncio.TimeoutError):
                self.refused_upstream += 1  # the broker is down: the client sees its connection reset
                return
            conn.upstream = up_writer
            pumps = [asyncio.ensure_future(self._pump(reader, up_writer, conn)),
                     asyncio.ensure_future(self._pump(up_reader, writer, conn))]
            conn.tasks.extend(pumps)
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            self._drop(conn)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: _Conn) -> None:
        while True:
            data = await src.read(65536)
            if not data:
                return
            if conn.dropping:
                continue
            if self.latency:
                await asyncio.sleep(self.latency)
                if conn.dropping:
                    continue
            dst.write(data)
            await dst.drain()

