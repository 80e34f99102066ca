# Every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
APP ?= examples/todo

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The WatermelonDB client the sync tests drive headless in Node (npm registry; lock file committed).
WATERMELON_NODE := tests/watermelon/node
$(WATERMELON_NODE)/node_modules/.installed: $(WATERMELON_NODE)/package.json $(WATERMELON_NODE)/package-lock.json
	cd $(WATERMELON_NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# TypeScript and supabase-js, to type-check what `tuskbase gen types typescript` prints (tests/devtools).
TYPEGEN_NODE := tests/devtools/node
$(TYPEGEN_NODE)/node_modules/.installed: $(TYPEGEN_NODE)/package.json $(TYPEGEN_NODE)/package-lock.json
	cd $(TYPEGEN_NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Tools of the packaging tests (tests/packaging): the compose-spec schema (npm) and Debian's docker-compose.
# The script writes the stamp only once both are there; a tool it cannot get makes its tests skip.
PACKAGING_TOOLS := $(VENV)/tools
$(PACKAGING_TOOLS)/.installed: tests/packaging/install-tools.sh
	sh tests/packaging/install-tools.sh $(PACKAGING_TOOLS)

## run: the whole stack on the embedded Postgres, serving the example todo app
run: $(STAMP)
	TUSKBASE_APP_DIR=$${TUSKBASE_APP_DIR:-$(APP)} $(BIN)/tuskbase dev

## test: the whole suite
test: $(DEV_STAMP) $(WATERMELON_NODE)/node_modules/.installed $(TYPEGEN_NODE)/node_modules/.installed \
      $(PACKAGING_TOOLS)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tuskbase
