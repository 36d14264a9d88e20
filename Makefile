# Developer entry points.  Everything runs from a local virtualenv (.venv) and
# uses embedded PostgreSQL / Redis / Kafka (Tansu) binaries shipped as Python
# wheels -- no Docker.  See contactcenter/devstack.py.

PYTHON ?= python3
# Prefer python3.11 (the version the project targets) unless PYTHON was given
# explicitly on the command line or in the environment.
ifeq ($(origin PYTHON),file)
ifneq ($(shell command -v python3.11 2>/dev/null),)
PYTHON := python3.11
endif
endif

VENV := .venv
VENV_PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: .venv run test bench-events bench-intake bench-routing bench-kpis trust clean

# `make .venv` creates the virtualenv; the install only re-runs when
# requirements.txt is newer than the stamp file.
.venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --upgrade pip
	$(VENV_PY) -m pip install -r requirements.txt
	touch $@

# Persistent local stack (data in .data/) + web, worker, beat, relay, projector.
run: .venv
	$(VENV_PY) -m contactcenter.devstack run

# Throw-away stack (fsync off) + pytest; e.g. make test PYTEST_ARGS="-k routing -x"
test: .venv
	scripts/ensure-chromium
	$(VENV_PY) -m contactcenter.devstack test $(PYTEST_ARGS)

# Throw-away stack with real fsync, like production; installs the bench-only
# peer (eventsourcing) first.
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(VENV_PY) -m pip install -r requirements-bench.txt
	touch $@

bench-events: .venv $(VENV)/.bench-installed
	$(VENV_PY) -m contactcenter.devstack bench bench/events_bench.py $(BENCH_ARGS)

# Webhook intake through the real ASGI server (2 daphne processes) and the
# timeline page; rewrites the bench-intake section of docs/BENCHMARKS.md.
bench-intake: .venv
	$(VENV_PY) -m contactcenter.devstack bench bench/intake_bench.py $(BENCH_ARGS)

# Routing decisions, offers/s and safety with 2 Celery routing workers racing
# (1,000 agents, 10,000 waiting); rewrites the bench-routing section of docs/BENCHMARKS.md.
bench-routing: .venv
	$(VENV_PY) -m contactcenter.devstack bench bench/routing_bench.py $(BENCH_ARGS)

# The KPI projection replaying 500,000 events and a 90-day report (docs/BENCHMARKS.md, bench-kpis section).
bench-kpis: .venv
	$(VENV_PY) -m contactcenter.devstack bench bench/kpis_bench.py $(BENCH_ARGS)

# Scaling out (issue 8): projector events/s with 2 sharded processes vs 1 (100,000 events, 8 partitions) and
# routing offers/s with 2 workers vs 1, same run; ~15 min; rewrites the bench-scale section of docs/BENCHMARKS.md.
# History (issue 9): the as_of timeline first page of a customer with 10,000 touches (p99 < 100 ms) vs the live
# page, the as_of context with events folded/s, and a what-if replay of one day of 200 agents and 20,000 contacts
# (< 60 s) vs reading the day; ~1 min; rewrites the bench-history section of docs/BENCHMARKS.md.
.PHONY: bench-history
bench-history: .venv
	$(VENV_PY) -m contactcenter.devstack bench bench/history_bench.py $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: .venv
	$(VENV_PY) -m contactcenter.devstack bench bench/scale_bench.py $(BENCH_ARGS)

# Fault and load scenarios (issue 8) against a throw-away stack the runner can break: Kafka partitioned and
# restarted, relay/projector/routing workers kill -9, PostgreSQL and Redis restarts, duplicate and out-of-order
# webhooks, 1,000 sockets; ~20-25 min; rewrites docs/TRUST.md. Not part of `make test`.
# Shorter: TRUST_INGEST_SECONDS=120 make trust; some: TRUST_ONLY=7,8 make trust; all knobs: python -m trust.run --help
trust: .venv
	$(VENV_PY) -m trust.run $(TRUST_ARGS)

# The API fuzzed for a long while (tests/test_fuzz.py, README "Proving it"): Schemathesis, every phase as an agent
# and as a supervisor, 100 examples per operation, a new seed each run (printed; FUZZ_SEED=<n> replays it);
# ~15-30 min. FUZZ_EXAMPLES=500 make fuzz for longer. `make test` runs a short, fixed version of it.
.PHONY: fuzz
fuzz: .venv
	FUZZ_LONG=1 $(VENV_PY) -m contactcenter.devstack test tests/test_fuzz.py -s --timeout=0 $(PYTEST_ARGS)

clean:
	rm -rf .data
