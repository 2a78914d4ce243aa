# Two commands do all set-up on a fresh Debian machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := redis-server bubblewrap git chromium chromium-driver socat ccache prometheus

.PHONY: setup apt venv test fast stack unit chaos demo down clean

setup: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/gantry: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[stack,test]'
	@touch $@

venv: $(BIN)/gantry

# Tests mirror the source folders; integration/, security/ and chaos/ hold the ones across the stack.
# `fast`: every test that needs no Ray (a redis-server of its own at most), on both cores.
# `stack`: the tests marked `stack` (tests/conftest.py marks each that uses the stack fixture).
# `test` runs both, the fast tier beside the stack tier at low CPU priority (tests/tiers.sh).
test: setup
	tests/tiers.sh $(BIN)/python

fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not stack" tests

stack: setup
	$(BIN)/python -m pytest -q -x -m stack tests --durations=10

unit: fast

chaos: setup
	$(BIN)/python -m pytest -q -x tests/chaos

demo: setup
	$(BIN)/python -m gantry.cluster.demo

down:
	$(BIN)/gantry down

clean:
	rm -rf $(VENV) *.egg-info
