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

install: ## create .venv with everything (uv sync)
	$(UV) sync --quiet

test: ## the generated tests: predict contract, cache, end-to-end run
	$(RUN) pytest

dev: ## development phase: a small subset into the dev database
	$(BENCH) dev $(ARGS)

clean-dev: ## delete the development database
	$(BENCH) clean-dev

experiment: ## experiment phase: the whole benchmark, every configuration
	$(BENCH) experiment $(ARGS)

metrics: ## print the metrics table of the latest experiment
	$(BENCH) metrics
