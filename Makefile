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

# Programs the tests drive for real: tmux for the end-to-end console tests.
system-deps:
	@command -v tmux >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; }

lint: $(STAMP)
	$(BIN)/ruff check opsconsole tests bench
	$(BIN)/ruff format --check opsconsole tests bench
	$(BIN)/mypy opsconsole
	$(BIN)/lint-imports

unit: $(STAMP) system-deps
	$(BIN)/pytest -q -p no:cacheprovider

test: lint unit

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
