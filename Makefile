# Qihuang: `make dev` brings up the whole stack, `make test` runs every test. Both install into .venv first.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: the install runs again only when pyproject.toml or the C extension's source is
# newer (or .venv is new).
STAMP := $(VENV)/.qihuang-installed

.PHONY: help install dev demo test bench lint clean

help:
	@echo "make dev      start PostgreSQL, Temporal, the worker and the API with demo data; Ctrl-C stops it"
	@echo "make demo     walk through a whole visit against the stack that make dev runs"
	@echo "make test     run every test"
	@echo "make bench    run the benchmarks in bench/ (one JSON line each)"
	@echo "make lint     ruff and mypy"
	@echo "make clean    remove caches and build output (keeps .venv and the data in .qihuang/)"

install: $(STAMP)

# `pip install --group` needs pip >= 25.1.
$(STAMP): pyproject.toml core/crypto/_sm4gcm.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

dev: install
	$(BIN)/qihuang dev

demo: install
	@test -f .qihuang/stack.json || { echo "没有正在运行的开发环境：请先在另一个终端运行 make dev" >&2; exit 1; }
	$(BIN)/qihuang demo

test: install
	$(BIN)/pytest -q

# Each benchmark prints one JSON line of results on stdout; progress, if any, goes to stderr.
bench: install
	@for script in bench/*.py; do \
		[[ -e "$$script" && "$$(basename "$$script")" != _* ]] || continue; \
		$(BIN)/python "$$script" | grep '^{'; \
	done

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy core models workflows activities api workers

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
