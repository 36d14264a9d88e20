"""The API against a fuzzer: Schemathesis drives every operation of /api/schema/ and checks each answer.

What it proves: no answer is a 5xx, and every answer is what the schema says (a documented status code, the
documented content type and headers, a body that validates against the documented schema), for valid input and
for input the schema calls invalid (which must be refused with a 4xx, never accepted), and for input it calls
valid (which must not be refused field by field). Every built-in check runs (ignored_auth reads our 404-outside-
scope rule correctly: a request without credentials is a 401 before any scope check) but positive_data_acceptance,
replaced by a narrower check of ours; which, why, and the two operations it leaves out are in
tests/fuzz/schemathesis.toml and tests/fuzz/hooks.py (with a fresh Idempotency-Key per call).

It runs the Schemathesis CLI (the same tool and the same checks a frontend team can run against staging) against
a real daphne serving this test's database, once as an agent and once as a supervisor (two of the roles of
docs/SECURITY.md), on the permission matrix's world (tests/test_permissions.py): an agent and a supervisor with
contacts, customers, promises, reports and evaluations, so lists come back with rows whose schema is checked too.
Random ids mostly get the documented 404 (outside the caller's scope, or absent: the same answer by design).

`make test` runs a small, fixed budget (deterministic: the same cases every run; about a minute on two cores);
`make fuzz` runs the long one (FUZZ_EXAMPLES, default 100 per operation, and a new seed each time, printed so a
failure can be replayed with FUZZ_SEED=<seed>). A failure shows each failing case with a curl line to replay it,
and the end of daphne's log (a 5xx's traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.routing.conftest import _env, _free_port
from tests.test_permissions import world  # noqa: F401  (the permission matrix's world: one of everything)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "fuzz" / "schemathesis.toml"
LONG = os.environ.get("FUZZ_LONG") == "1"  # `make fuzz`
# About a minute on two idle cores, but on a machine busy with other work it can take several times that: more
# room than pytest.ini's 300 s, so that a slow machine does not pass for a failure. `make fuzz`: no limit.
TIMEOUT = 0 if LONG else 900

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or (100 if LONG else 5))  # per operation, in the fuzzing phase
SEED = os.environ.get("FUZZ_SEED") or ("random" if LONG else "")  # none: deterministic (the same cases every run)
ROLES = {"agent": "bob", "supervisor": "sup_b"}  # bob's team B is sup_b's
# The coverage phase (every parameter's and field's boundaries, each kind of invalid value, unexpected methods)
# is most of the cost. `make test` splits it: the agent covers the customer and interaction operations (about
# half the cases), the supervisor the rest (reports, evaluations, approvals, promises: past the role checks that
# stop an agent); both fuzz every operation. `make fuzz` runs every phase on every operation as both.
AGENT_HALF = "^/api/v1/(customers|interactions)/"
# `make test` also leaves out what costs much and proves little twice over: the coverage phase's probe of every
# method a path does not have (one, DELETE, which no path of ours takes, shows the 405), and the two signed
# provider webhooks, which answer a bearer-token caller 401 (no signature) to every one of their ~450 coverage
# cases (their intake is tested in tests/interactions/test_webhooks.py and tests/quality).
SHORT = {role: f"""
[phases.examples]
enabled = false  # the one example in the schema (an amount) is a case the other phases draw anyway

[phases.coverage]
unexpected-methods = ["DELETE"]

[[operations]]
{"exclude" if role == "agent" else "include"}-path-regex = "{AGENT_HALF}"
phases.coverage.enabled = false
""" for role in ROLES}
SHORT_ARGS = ["--exclude-path-regex", "webhook"]
if os.environ.get("FUZZ_ROLES"):  # e.g. FUZZ_ROLES=agent, while working on one role's failures
    ROLES = {role: ROLES[role] for role in os.environ["FUZZ_ROLES"].split(",")}


@contextmanager
def _daphne():
    """daphne serving this test's database, on a free port; its log (a file, never a pipe that could fill up) is
    shown when it does not start."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                 "contactcenter.asgi:application"], cwd=REPO,
                                env=_env(WEBHOOK_SECRETS="test=s3cret", LOG_REQUESTS="false"), stdout=log,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).read()  # nosec B310: our own http URL
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError("daphne did not start:\n" + log.read().decode(errors="replace")) from None
                    time.sleep(0.1)
            yield base, log
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _schemathesis(base: str, token: str, out, config: Path, storage: str) -> subprocess.Popen:
    seed = {"": ["--generation-deterministic"], "random": []}.get(SEED, ["--seed", SEED])
    # One worker: Hypothesis's generation is not thread-safe on Python 3.11 (SystemError "AST constructor
    # recursion depth mismatch" with two); the two roles run in parallel instead.
    command = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "--config-file", str(config), "run",
               f"{base}/api/schema/?format=json", "--header", f"Authorization: Bearer {token}",
               "--max-examples", str(EXAMPLES), *seed, "--workers", "1", "--no-color",
               *([] if LONG else SHORT_ARGS),
               *os.environ.get("FUZZ_ARGS", "").split()]  # more, e.g. FUZZ_ARGS="--include-path-regex customers"
    # cwd: the hooks module (tests.fuzz.hooks) is imported from here. Hypothesis keeps its files in a temporary
    # directory, not in the repository.
    return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            env=dict(os.environ, HYPOTHESIS_STORAGE_DIRECTORY=storage, COLUMNS="160"))


def _report(text: str) -> str:
    """What to show when it fails: the failures and errors, and the summary, without the progress lines."""
    start = min((i for i in (text.find("=== FAILURES"), text.find("=== ERRORS")) if i >= 0), default=0)
    return text[start:][-20000:]


def test_no_5xx_and_every_answer_as_documented(world, tmp_path):  # noqa: F811
    """Both roles at once (two daphnes, two fuzzers: the machine's two cores), each must finish clean."""
    tokens = {role: Token.objects.get(user__username=username).key for role, username in ROLES.items()}
    with ExitStack() as stack:
        runs = {}
        for role, token in tokens.items():
            base, server_log = stack.enter_context(_daphne())
            out = stack.enter_context(open(tmp_path / f"{role}.txt", "w+"))
            config = tmp_path / f"schemathesis-{role}.toml"
            config.write_text(CONFIG.read_text() + ("" if LONG else SHORT[role]))
            storage = str(tmp_path / f"hypothesis-{role}")
            runs[role] = (_schemathesis(base, token, out, config, storage), out, server_log)
        failed = {}
        for role, (proc, out, server_log) in runs.items():
            code = proc.wait(timeout=TIMEOUT - 60 if TIMEOUT else None)
            out.seek(0)
            text = out.read()
            print(f"--- schemathesis as the {role} ---\n{text}")  # shown with -s, or when the test fails
            if code != 0:
                server_log.seek(0)
                errors = server_log.read().decode(errors="replace")
                failed[role] = _report(text) + ("\n--- daphne's log ---\n" + errors[-5000:] if errors else "")
    assert not failed, "\n\n".join(f"=== as the {role} ===\n{report}" for role, report in failed.items())
