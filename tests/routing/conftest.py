"""Routing test fixtures: a real daphne (and a routing worker) serving the test's database."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return dict(os.environ, DATABASE_URL=url, DEBUG="false", ALLOWED_HOSTS="127.0.0.1", SECURE_SSL_REDIRECT="false",
                SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false",
                DJANGO_SETTINGS_MODULE="contactcenter.test_settings",  # the same password hasher as the test
                LOG_LEVEL="WARNING", **extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web():
    """daphne serving this test's database (the committed data of a transactional test)."""
    port = _free_port()
    env = _env(WEBHOOK_SECRETS="sim=sim-secret")
    log = tempfile.TemporaryFile()  # not a pipe: daphne logs every request, and a full pipe would stall it
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "contactcenter.asgi:application"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                raise RuntimeError("daphne did not start:\n" + log.read().decode(errors="replace")) from None
            time.sleep(0.1)
    yield base
    proc.terminate()
    try:  # as `make run` stops it: SIGTERM, then SIGKILL after a grace period (daphne may wait on open sockets)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()




@pytest.fixture
def routing_worker():
    """A Celery worker on the routing queue, on this test's database."""
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-Q", "routing", "-P",
                             "solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
