# The two commands of the README:
#   make demo   sets everything up, then replays samples/ offline and prints the chargeback
#   make test   sets everything up, then runs ruff, mypy and pytest
# Python 3.13: the Functions runtime we pin (azure-functions-runtime) needs 3.13 or newer.
# Found on PATH as python3.13, else under pyenv; `make PYTHON=/path/to/python3.13` overrides.
PYTHON ?= $(shell for p in $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 \
	$$HOME/.pyenv/versions/3.13*/bin/python3.13 $$(command -v python3.13); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null \
	&& { echo "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
# The exporter otherwise reports its own usage to Microsoft endpoints.
export APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL := true
export APPLICATIONINSIGHTS_SDKSTATS_DISABLED := true
export APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED := true

.PHONY: demo test setup chromium csharp bench accuracy clean

demo: $(VENV)/.installed
	$(BIN)/python -m chargeback demo

test: $(VENV)/.installed tests/kusto/node_modules/.installed tests/azurite/node_modules/.installed chromium csharp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

setup: $(VENV)/.installed tests/kusto/node_modules/.installed tests/azurite/node_modules/.installed chromium csharp

# The report test renders the HTML charts in headless Chromium (Debian's package; needs root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The policy tests compile the APIM policy's C# expressions with Mono's compiler and run them
# with Json.NET (Debian's packages; needs root): the real expression text, not a port of it.
csharp:
	@{ command -v mcs >/dev/null 2>&1 && [ -f /usr/lib/cli/Newtonsoft.Json-5.0/Newtonsoft.Json.dll ]; } || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
			mono-mcs libnewtonsoft-json5.0-cil >/dev/null; }

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@[ -n "$(PYTHON)" ] || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13) or run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || { echo "$(PYTHON) is not Python 3.13: run make PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

tests/%/node_modules/.installed: tests/%/package.json tests/%/package-lock.json
	npm ci --prefix tests/$* --no-audit --no-fund --loglevel=error
	touch $@

bench: $(VENV)/.installed
	$(BIN)/python -m chargeback bench

accuracy: $(VENV)/.installed
	$(BIN)/python -m chargeback accuracy tests/data/recorded-exchanges.jsonl

clean:
	rm -rf $(VENV) .chargeback tests/kusto/node_modules tests/azurite/node_modules
