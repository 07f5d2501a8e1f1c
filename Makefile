# copier-benchmark: the template's own tasks. Needs only python3 and pip on a fresh machine.
VENV := $(CURDIR)/.venv
UV := $(VENV)/bin/uv
PY := $(VENV)/bin/python
DEMO ?= $(CURDIR)/demo
export PATH := $(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint benchmark benchmark-scale clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet uv

install: $(UV) ## the development environment (.venv): copier, pytest, xetrack, ...
	$(UV) sync --quiet

demo: install ## render the template with defaults into ./demo and run its experiment
	rm -rf $(DEMO) $(DEMO)-dvc-storage
	$(VENV)/bin/copier copy --trust --defaults --vcs-ref HEAD -d dvc_remote=$(DEMO)-dvc-storage $(CURDIR) $(DEMO)
	$(MAKE) -C $(DEMO) experiment

test: install ## the whole test suite (renders answer sets and runs what they generate): CI, 521 tests, about 4-4.5 min on 2 idle cores (-n 2)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install ## for development: in-process harness tests and static render checks (-m "not slow"), 429 tests, about 55 s on 2 idle cores
	PROPERTY_BUDGET=dev $(PY) -m pytest -m "not slow" -n 2 $(PYTEST_ARGS)

lint: install ## ruff on the template repository and the rendered harness
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

benchmark: install ## performance figures (ratios measured in one run): harness, work after the run, DVC growth
	@status=0; \
	$(PY) benchmarks/run_all.py || status=1; \
	$(PY) benchmarks/post_run.py || status=1; \
	$(PY) benchmarks/dvc_growth.py || status=1; \
	exit $$status

benchmark-scale: install ## make report on 1,000,000 prediction rows: seconds and peak memory
	$(PY) benchmarks/scale_report.py

clean: ## remove the environment and the demo
	rm -rf $(VENV) $(DEMO) $(DEMO)-dvc-storage
