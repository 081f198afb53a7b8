# Two commands on a fresh machine: `make demo` and `make test`. Both set up the dev host when needed.
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: setup demo ui thumbnails test lint unit integration browser bench clean-host

setup:
	@tools/setup.sh

demo: setup
	@$(PY) tools/demo.py $(if $(CKPT),--checkpoint "$(CKPT)") $(if $(EIT),--eit "$(EIT)") $(if $(WORKFLOW),--workflow "$(WORKFLOW)")

ui: setup
	@$(PY) tools/ui.py

thumbnails: setup
	@$(PY) tools/render_thumbnails.py

lint: setup
	@$(PY) -m ruff check .

test: setup lint
	@$(PY) -m pytest tests

unit: setup
	@$(PY) -m pytest tests/unit

integration: setup
	@$(PY) -m pytest tests/integration

browser: setup
	@$(PY) -m pytest tests/browser

bench: setup
	@$(PY) -m bench all $(if $(QUICK),--quick)

clean-host:
	rm -rf .host
