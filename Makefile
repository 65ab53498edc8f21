# The two commands a newcomer needs: `make run` and `make test`. Each creates .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
WORKSPACE ?= .opsconsole

.PHONY: install run test lint unit bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The console on the embedded demo: a sample service, traffic and a canary rollout to approve.
run: $(STAMP)
	$(BIN)/opsconsole demo --workspace $(WORKSPACE)

# Programs the tests drive for real: tmux for the end-to-end console tests; PostgreSQL 15 (server
# and client programs, run by tests/pg on a throwaway cluster of their own) and unshare, in which
# the tests run postgres when they are root; Prometheus (tests/prom start one on a loopback port);
# Alertmanager, which tests/alertmanager start on a free loopback port with no gossip port;
# a Docker engine and busybox-static (tests/docker start one dockerd on a socket of their own, with
# networking off, and `docker import` a busybox root filesystem as their images); nginx, the
# blue-green traffic switch tests/docker start on a loopback port.
PG_BIN ?= /usr/lib/postgresql/15/bin
system-deps:
	@command -v tmux >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; }
	@test -x $(PG_BIN)/pg_ctl -a -x $(PG_BIN)/pg_restore || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15; }
	@command -v unshare >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux; }
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	@command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager; }
	@test -x /usr/sbin/dockerd || command -v dockerd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; }
	@test -x /usr/bin/busybox -o -x /bin/busybox || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

lint: $(STAMP)
	$(BIN)/ruff check opsconsole tests bench
	$(BIN)/ruff format --check opsconsole tests bench
	$(BIN)/mypy opsconsole
	$(BIN)/lint-imports

# The suites that drive real daemons (PostgreSQL, Prometheus, Alertmanager, dockerd, nginx, moto), and
# the tests that run the demo in real time or build the wheel, spend their time waiting, not on the
# CPU: they run in a second pytest beside the rest (about 10 min each on 2 cores), each process with
# its own daemons on free loopback ports, and the run fails when either fails.
WAITING_SUITES := tests/store tests/team tests/docker tests/prom tests/alertmanager tests/cloudwatch tests/s3 tests/pg tests/notify tests/backups tests/integration/test_wheel.py tests/integration/test_demo_acceptance.py tests/faults/test_rollout_exclusive.py
unit: $(STAMP) system-deps
	@$(BIN)/pytest -q -p no:cacheprovider --durations=15 $(WAITING_SUITES) > $(VENV)/waiting-suites.log 2>&1 & daemons=$$!; \
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 $(addprefix --ignore=,$(WAITING_SUITES)); rest=$$?; \
	wait $$daemons; d=$$?; echo "--- $(WAITING_SUITES):"; cat $(VENV)/waiting-suites.log; \
	test $$rest -eq 0 -a $$d -eq 0

test: lint unit

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
