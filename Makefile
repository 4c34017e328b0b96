# The two commands of nicos-scriptserver (see README.md):
#   make demo   start the script server on the demo instrument
#   make test   run the whole test suite
# Both install what they need into .venv first (tools/bootstrap, idempotent).

PYTHON := .venv/bin/python
# The demo and test services may run as root only inside containers/CI;
# a deployment names its service user in nicos.conf instead.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=

.PHONY: demo test bootstrap bench

bootstrap:
	@tools/bootstrap

demo: bootstrap
	$(PYTHON) -m nicos_scriptserver.supervisor.serve $(ALLOW_ROOT) $(DEMO_ARGS)

test: bootstrap
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: bootstrap
	@for b in bench/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done
