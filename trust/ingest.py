"""Sustained ingest of signed webhooks, with a ledger of every delivery the API acknowledged.

Behaves like a channel provider: each delivery (one `provider_message_id`) is sent at its scheduled time
and, when the answer is not a 2xx (a 503 while the database restarts, a connection error, a timeout), sent
again with a fresh timestamp and signature after the `Retry-After` it was given (1 s without one), until it
is acknowledged or `give_up` seconds have passed. A 4xx other than 429 is final (the delivery was refused).

Every attempt is kept (when, which status, which error code), so a scenario can count what happened while
its fault lasted; the ledger (ids answered 2xx, and when) is what the end of the run checks against the
event store, the Kafka topic and the timeline.

The payloads are bench/intake_bench.py's mix (chat sessions, SMS, email threads and replies, Instagram
DMs; no voice: a call's events carry no message id the timeline can be checked by, and calls get their
own scenario), signed with intake_bench.signed().
"""

from __future__ import annotations

import http.client
import json
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import intake_bench as ib  # bench/ is on sys.path (trust/__init__.py)

PROVIDER = "trust"
INGEST_QUEUE = "trust-ingest"  # a queue nobody is staffed for: the ingest's work waits, it is never offered
MESSAGE_CHANNELS = [ch for ch, weight in ib.MIX if ch != "voice" for _ in range(weight)]


@dataclass
class Attempt:
    start: float
    end: float
    status: int | str  # HTTP status, or "error <ExceptionName>"
    code: str = ""  # the error body's `code` for non-2xx answers ("database_unavailable", ...)
    retry_after: str = ""


@dataclass
class Delivery:
    message_id: str
    channel: str
    body: dict
    due: float
    attempts: list[Attempt] = field(default_factory=list)
    acked_at: float | None = None
    duplicate_answer: bool = False  # acknowledged as "already received" (an earlier attempt had committed)
    refused: int | None = None  # a final 4xx
    gave_up: bool = False


def configure(secret: str) -> None:
    """intake_bench.signed() signs with its module's SECRET for its PROVIDER: point it at ours."""
    ib.SECRET = secret
    ib.PROVIDER = PROVIDER


class Ingest:
    def __init__(self, customers: list[dict], ports: list[int], *, rate: float, threads: int = 64,
                 give_up: float = 300.0, seed: int = 8, run: str = "trust"):
        self.mix = ib.Mix(customers, seed=seed, run=run)
        self.rnd = random.Random(seed)
        self.ports = ports
        self.rate = rate
        self.threads = threads
        self.give_up = give_up
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._pacing = threading.Event()
        self._pool: list[threading.Thread] = []
        self._pacer: threading.Thread | None = None
        self._lock = threading.Lock()
        self.started_at = 0.0
        self.stopped_at = 0.0

    # --- running --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._pacing.set()
        self._pool = [threading.Thread(target=self._work, args=(w,), name=f"ingest-{w}", daemon=True)
                      for w in range(self.threads)]
        for t in self._pool:
            t.start()
        self._pacer = threading.Thread(target=self._pace, name="ingest-pacer", daemon=True)
        self._pacer.start()

    def stop(self, timeout: float = 600.0) -> None:
        """Stop scheduling new deliveries and wait for every one in flight to be acknowledged or given up."""
        self._pacing.clear()
        self._pacer.join()
        self.stopped_at = time.monotonic()
        for _ in self._pool:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._pool:
            t.join(max(0.0, deadline - time.monotonic()))

    def _pace(self) -> None:
        i = 0
        while self._pacing.is_set():
            due = self.started_at + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.5))
                continue
            ch = MESSAGE_CHANNELS[self.rnd.randrange(len(MESSAGE_CHANNELS))]
            body = getattr(self.mix, ch)(i)
            body["queue"] = INGEST_QUEUE
            d = Delivery(body["provider_message_id"], ch, body, due)
            with self._lock:
                self.deliveries.append(d)
            self._queue.put(d)
            i += 1

    def _work(self, w: int) -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        while True:
            d = self._queue.get()
            if d is None:
                break
            self._deliver(d, conns, w)
        for c in conns.values():
            c.close()

    def _deliver(self, d: Delivery, conns: dict, w: int) -> None:
        k = w
        while True:
            port = self.ports[k % len(self.ports)]
            k += 1  # a retry goes to the other web process, as a load balancer would send it
            path, raw, headers = ib.signed(d.channel, d.body, str(int(time.time())))
            t0 = time.monotonic()
            status: int | str
            code = retry_after = ""
            try:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("POST", path, body=raw, headers=headers)
                r = c.getresponse()
                payload = r.read()
                status = r.status
                retry_after = r.getheader("Retry-After") or ""
                if status >= 300 or status < 200:
                    code = _code(payload)
                elif _json(payload).get("duplicate"):
                    d.duplicate_answer = True
            except (OSError, http.client.HTTPException) as exc:
                conns.pop(port, None)
                status = f"error {type(exc).__name__}"
            t1 = time.monotonic()
            d.attempts.append(Attempt(t0, t1, status, code, retry_after))
            if isinstance(status, int) and 200 <= status < 300:
                d.acked_at = t1
                return
            if isinstance(status, int) and 400 <= status < 500 and status != 429:
                d.refused = status
                return
            if t1 - d.due > self.give_up:
                d.gave_up = True
                return
            try:
                pause = float(retry_after) if retry_after else 1.0
            except ValueError:
                pause = 1.0
            time.sleep(min(pause, 10.0) * (0.5 + self.rnd.random()))

    # --- what happened --------------------------------------------------------------------------------------

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def acked(self) -> dict[str, Delivery]:
        return {d.message_id: d for d in self.snapshot() if d.acked_at is not None}

    def pending(self) -> int:
        return sum(1 for d in self.snapshot() if d.acked_at is None and d.refused is None and not d.gave_up)

    def window(self, t0: float, t1: float) -> dict:
        """Attempts that ended in [t0, t1] by outcome, and the deliveries first sent in it."""
        statuses: Counter = Counter()
        codes: Counter = Counter()
        for d in self.snapshot():
            for a in d.attempts:
                if t0 <= a.end <= t1:
                    statuses[str(a.status)] += 1
                    if isinstance(a.status, int) and a.status >= 500:
                        codes[f"{a.status} {a.code or '-'}{' Retry-After' if a.retry_after else ''}"] += 1
        exposed = [d for d in self.snapshot() if t0 <= d.due <= t1]
        return {
            "attempts": sum(statuses.values()),
            "statuses": dict(statuses),
            "5xx": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500),
            "503": statuses.get("503", 0),
            "errors": sum(n for s, n in statuses.items() if s.startswith("error")),
            "5xx_codes": dict(codes),
            "deliveries": len(exposed),
            "acked": [d.message_id for d in exposed if d.acked_at is not None],
            "refused": sum(1 for d in exposed if d.refused),
            "gave_up": sum(1 for d in exposed if d.gave_up),
            "unacked_now": sum(1 for d in exposed if d.acked_at is None),
        }

    def first_ack_after(self, t: float) -> float | None:
        """The first acknowledgement that ended after `t` (monotonic), of any delivery."""
        ends = [a.end for d in self.snapshot() for a in d.attempts
                if a.end >= t and isinstance(a.status, int) and 200 <= a.status < 300]
        return min(ends) if ends else None


def _json(payload: bytes) -> dict:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _code(payload: bytes) -> str:
    return str(_json(payload).get("code", ""))[:60]
