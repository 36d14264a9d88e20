"""The stack `make trust` runs its scenarios against, with the levers to break it.

The same embedded services and processes as `make run` (contactcenter.devstack): PostgreSQL (real fsync),
Redis, the Tansu broker, and web (daphne), routing workers, the default-queue worker, beat, the relay and
the projector. Unlike `make run` (or `devstack bench`, whose services a script cannot restart), the runner
owns every one of them, so it can stop PostgreSQL for 10 s, restart Redis, restart the broker empty, or
`kill -9` one process. The Kafka clients reach the broker through trust.proxy.FaultProxy (the broker
advertises the proxy's address), which can drop or delay their traffic.

Like docker-compose's `restart: unless-stopped`, a supervisor thread starts again any process that exits
without being told to, and records it: an unexpected exit is a finding of the scenario it happened in.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from events_bench import Proc, log  # the benches' child-process and log helpers (bench/ is on sys.path)

from contactcenter.devstack import Kafka, Postgres, Redis, free_port
from trust.proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent

ALL_PROCESSES = ("web", "routing", "worker", "beat", "relay", "projector")


class ProxiedKafka(Kafka):
    """Tansu listening on `port` but advertising the proxy's port, so every client goes through the proxy."""

    def __init__(self, port: int, advertised_port: int, log_dir: Path):
        super().__init__(port, log_dir=log_dir)
        self.advertised_port = advertised_port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def command(self) -> list[str]:
        return [str(self.binary), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine", "memory://tansu/"]


@dataclass
class Exit:
    name: str
    code: int | None
    at: float  # time.monotonic()
    tail: str


class Stack:
    def __init__(self, base: Path, *, web: int = 2, routing: int = 2, env: dict | None = None):
        self.base = base
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(base / "postgres", free_port(), fast=False, log_dir=self.logs)
        self.redis = Redis(free_port(), log_dir=self.logs)
        broker_port = free_port()
        self.proxy = FaultProxy(broker_port)
        self.kafka = ProxiedKafka(broker_port, self.proxy.port, self.logs)
        self.web_ports = [free_port() for _ in range(web)]
        self.routing_workers = routing
        self.extra_env = env or {}
        self.procs: dict[str, Proc] = {}
        self.incarnations: Counter = Counter()
        self.exits: list[Exit] = []
        self.held: set[str] = set()  # stopped or killed on purpose: the supervisor leaves them alone
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    # --- services -----------------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.pg.url

    def env(self, app: str = "trust") -> dict:
        """Environment of an app process (and of the runner's own Django): production-like settings."""
        env = dict(os.environ)
        for var in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "DJANGO_SETTINGS_MODULE"):
            env.pop(var, None)
        env.update({
            # application_name tells the runner which process holds a lock or a transaction (pg_stat_activity).
            "DATABASE_URL": f"{self.pg.url}?application_name={app}",
            "REDIS_URL": self.redis.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "DJANGO_SETTINGS_MODULE": "contactcenter.settings",
            "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false", "CSRF_COOKIE_SECURE": "false",
            "LOG_FORMAT": "plain", "LOG_LEVEL": "INFO", "LOG_REQUESTS": "false", "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(self.base / "prometheus"),
        })
        env.update(self.extra_env)
        return env

    def start_services(self) -> None:
        (self.base / "prometheus").mkdir(exist_ok=True)
        self.pg.start()
        self.redis.start()
        self.proxy.start()
        self.kafka.start()
        os.environ.update({k: v for k, v in self.env().items() if k not in ("DATABASE_URL",)})
        os.environ["DATABASE_URL"] = self.pg.url
        os.environ["DB_POOL_MAX_SIZE"] = "0"  # the runner: plain connections, fine across a database restart
        os.environ["LOG_LEVEL"] = "WARNING"

    def migrate(self) -> None:
        proc = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO,
                              env=self.env("trust-migrate"), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{proc.stdout}\n{proc.stderr}")

    # --- app processes ------------------------------------------------------------------------------------

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        out = {}
        for k, port in enumerate(self.web_ports):
            out[f"web-{k}"] = [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "contactcenter.asgi:application"]
        for k in range(self.routing_workers):
            out[f"routing-{k}"] = self.routing_command(k)
        out["worker"] = [py, "-m", "celery", "-A", "contactcenter", "worker", "-Q", "celery", "-n", "worker@%h",
                         "-l", "info", "--concurrency", "1"]
        out["beat"] = [py, "-m", "celery", "-A", "contactcenter", "beat", "-l", "info",
                       "--schedule", str(self.base / "celerybeat-schedule")]
        out["relay"] = [py, "manage.py", "run_relay"]
        out["projector"] = [py, "manage.py", "run_projector"]
        return out

    @staticmethod
    def routing_command(k: int) -> list[str]:
        # As the README runs them: the solo pool, one decision at a time per worker.
        return [sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-Q", "routing", "-P", "solo",
                "-n", f"routing{k}@%h", "-l", "info"]

    def start(self, name: str, cmd: list[str] | None = None) -> Proc:
        with self._lock:
            cmd = cmd or self.commands()[name]
            self.incarnations[name] += 1
            proc = Proc(f"{name}.{self.incarnations[name]}", cmd, self.env(f"trust-{name}"), self.logs)
            self.procs[name] = proc
            self.held.discard(name)
            return proc

    def start_all(self) -> None:
        for name in self.commands():
            self.start(name)
        self.wait_web()
        self._supervisor = threading.Thread(target=self._supervise, name="trust-supervisor", daemon=True)
        self._supervisor.start()

    def wait_web(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for k, port in enumerate(self.web_ports):
            while True:
                self.procs[f"web-{k}"].check()
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
                    c.getresponse().read()
                    c.close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"web-{k} did not answer:\n{self.procs[f'web-{k}'].tail()}") from None
                    time.sleep(0.2)

    def kill(self, name: str, sig: int = signal.SIGKILL, *, hold: bool = True) -> None:
        """Send `sig` to the process's whole group (a prefork worker's child too); `hold`: don't restart it."""
        with self._lock:
            if hold:
                self.held.add(name)
            proc = self.procs[name]
            try:
                os.killpg(proc.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGKILL:
            proc.proc.wait(10)

    def stop(self, name: str) -> None:
        with self._lock:
            self.held.add(name)
            proc = self.procs.get(name)
        if proc is not None:
            proc.stop()
            try:
                os.killpg(proc.proc.pid, signal.SIGKILL)  # whatever it forked
            except (ProcessLookupError, PermissionError):
                pass

    def pid(self, name: str) -> int:
        return self.procs[name].proc.pid

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for name, proc in list(self.procs.items()):
                    if name in self.held or proc.proc.poll() is None:
                        continue
                    exit_ = Exit(name, proc.proc.returncode, time.monotonic(), proc.tail(15))
                    self.exits.append(exit_)
                    log(f"!! {name} exited unexpectedly with {exit_.code}; restarting it (restart: unless-stopped)")
                    proc.stop()
                    self.start(name)

    def exits_between(self, t0: float, t1: float) -> list[Exit]:
        return [e for e in self.exits if t0 <= e.at <= t1]

    # --- teardown -----------------------------------------------------------------------------------------

    def down(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        for name in list(self.procs):
            try:
                self.stop(name)
            except Exception as exc:
                log(f"stopping {name}: {exc}")
        for service in (self.kafka, self.redis, self.pg):
            try:
                service.stop()
            except Exception as exc:
                log(f"stopping {service.name}: {exc}")
        self.proxy.stop()
