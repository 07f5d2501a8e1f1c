# Harness targets. TEMPLATE-OWNED: `copier update` replaces this file; put your targets in Makefile.
UV ?= uv
RUN := $(UV) run --quiet
BENCH := $(RUN) bench
# Extra flags for bench, e.g. make experiment ARGS="--executor threads --workers 16"
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test dev clean-dev experiment metrics

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

install: ## create .venv with everything (uv sync) and install the pre-commit hooks
	$(UV) sync --quiet
	@$(RUN) python -m bench_harness setup-duckdb
	@if [ -d .git ] && [ -f .pre-commit-config.yaml ]; then $(RUN) pre-commit install >/dev/null && echo "pre-commit hooks installed"; fi

test: ## the generated tests: predict contract, a smoke run of the harness on a slice of the data
	$(RUN) pytest

dev: ## development phase: a small subset into the dev database
	$(BENCH) dev $(ARGS)

clean-dev: ## delete the development database
	$(BENCH) clean-dev

experiment: ## experiment phase: preflight, run, metrics, commit + tag e0.0.N (MESSAGE="...", ARGS=--allow-dirty / --force-tag)
	$(BENCH) experiment --message "$${MESSAGE:-}" $(ARGS)

.PHONY: experiments preflight check-schema reproduce push dvc-setup rebuild-db
experiments: ## list the experiments: tags e0.0.N with their messages
	$(BENCH) experiments

preflight: ## pre-experiment validation only: schema drift, code changes, uncommitted work
	$(BENCH) preflight $(ARGS)

comma := ,
check-schema: ## params.py vs the recorded columns; RENAME=old=new[,old=new] renames columns in place
	$(BENCH) check-schema $(foreach r,$(subst $(comma), ,$(RENAME)),--rename $(r))

reproduce: ## restore TAG=e0.0.N into reproductions/<tag>/ (a git worktree: its code, data and database)
	@test -n "$(TAG)" || { echo "usage: make reproduce TAG=e0.0.1 (make experiments lists the tags)" >&2; exit 2; }
	$(BENCH) reproduce "$(TAG)"

rebuild-db: ## rebuild the working benchmark.db from results/<version>.db (a missing or stale one; the old one is kept)
	$(BENCH) rebuild-db

push: ## push data and every experiment's results to the DVC remote (verified with dvc status -c)
	$(BENCH) push

dvc-setup: ## DVC for data/ and results (done at copy time with --trust): init, remote, data.dvc
	$(BENCH) dvc-setup

metrics: ## print the metrics table of the latest experiment
	$(BENCH) metrics

# copier on PATH (pip install copier), else uv fetches it. Only new questions are asked; without
# a terminal (CI) they take their defaults (or ARGS="-d question=answer"). --trust runs the
# template's migrations. Inline conflicts leave markers and exit 0: the target looks for them.
COPIER ?= $(if $(shell command -v copier 2>/dev/null),copier,$(UV) tool run --from "copier>=9.11" copier)
.PHONY: update
update: ## copier update to the latest template release (ARGS="--vcs-ref v1.2.0"), then the schema check
	@$(COPIER) update --trust --skip-answered --conflict inline $$([ -t 0 ] || echo --defaults) $(ARGS) || { \
	  status=$$?; echo "copier update failed. If the template moved, point _src_path in .copier-answers.yml at" >&2; \
	  echo "its new location (now: $$(grep '^_src_path:' .copier-answers.yml 2>/dev/null | cut -d' ' -f2-))," >&2; \
	  echo "commit that, and run make update again." >&2; exit $$status; }
	@conflicts="$$(git grep -lE '^(<<<<<<<|>>>>>>>)( |$$)' || true)"; if [ -n "$$conflicts" ]; then \
	  echo "copier update left conflict markers: resolve them, then commit:" >&2; echo "$$conflicts" >&2; exit 1; fi
	@if [ -d .git ] && [ -f .pre-commit-config.yaml ]; then $(RUN) pre-commit install >/dev/null && echo "pre-commit hooks installed"; fi
	$(BENCH) check-schema
	@echo "updated: review \`git status\` / \`git diff\`, run \`make test\`, then commit"

.PHONY: compare
compare: ## HEAD=e0.0.M (default: latest) vs BASE=e0.0.N (default: the one before): what changed, what moved; exit 1 on a regression (ARGS="--max-drop 0.01 --json compare.json")
	$(BENCH) compare $(if $(BASE),--base $(BASE)) $(if $(HEAD),--head $(HEAD)) $(ARGS)

.PHONY: retry-errors
retry-errors: ## re-run only the error rows of the latest experiment (VERSION=e0.0.N for another), then its metrics
	$(BENCH) retry-errors $(if $(VERSION),--experiment-version $(VERSION)) $(ARGS)

.PHONY: browse notebook
browse: ## the results in Datasette, read-only, on http://127.0.0.1:8001 (PORT=..., ARGS=--dev)
	$(UV) run --quiet --extra browse bench browse --port $${PORT:-8001} $(ARGS)

notebook: ## the analysis notebook (marimo) over both tables: notebooks/analysis.py
	$(UV) run --quiet --extra notebook marimo edit notebooks/analysis.py

# Analysis (DuckDB, offline). VERSION=e0.0.N picks a version (default: the latest); ARGS=--dev the dev database.
.PHONY: inspect validate sql duckdb recipes export report rescore
inspect: ## development phase: inspect the dev results (missing values, ranges, types...); fails on an issue
	$(BENCH) inspect $(ARGS)

validate: ## after a run: duplicate executions, NULL params, errors by type, cache analysis; fails on an issue
	$(BENCH) validate $(if $(VERSION),--version $(VERSION)) $(ARGS)

sql: ## run SQL with DuckDB, the database attached as db: make sql Q="SELECT ..." (or Q=@by_config)
	@$(BENCH) sql "$$Q" $(ARGS)

duckdb: ## a DuckDB shell on the results (db attached; .help, .recipes); reads a script from a pipe
	@$(BENCH) duckdb $(ARGS)

recipes: ## the guide's analysis queries for this benchmark (run one with make sql Q=@name)
	@$(BENCH) recipes $(ARGS)

export: ## both tables to exports/*.parquet and exports/*.csv (VERSION=... for one version)
	$(BENCH) export $(if $(VERSION),--version $(VERSION)) $(ARGS)

report: ## reports/<version>/RESULTS.md + report.html: CIs, paired tests, segments, Pareto, disagreements
	$(BENCH) report $(if $(VERSION),--version $(VERSION)) $(ARGS)

rescore: ## re-apply scoring.py to the stored raw responses (no predict call): scored_prediction + metrics rows
	$(BENCH) rescore $(if $(VERSION),--version $(VERSION)) $(ARGS)
