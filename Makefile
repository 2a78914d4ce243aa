# Two commands do all set-up on a fresh Debian machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := redis-server bubblewrap git chromium chromium-driver socat ccache

.PHONY: setup apt venv test unit integration chaos demo down clean

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
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/gantry

test: setup
	$(BIN)/python -m pytest -q tests/unit
	$(BIN)/python -m pytest -q -x tests/integration tests/security tests/chaos

unit: venv
	$(BIN)/python -m pytest -q tests/unit

chaos: setup
	$(BIN)/python -m pytest -q -x tests/chaos

demo: setup
	$(BIN)/python -m gantry.cluster.demo

down:
	$(BIN)/gantry down

clean:
	rm -rf $(VENV) *.egg-info
