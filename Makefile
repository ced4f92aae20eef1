# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the PDF brief needs: WeasyPrint's libraries (pango, harfbuzz, fontconfig),
# the DejaVu fonts the brief's CSS names, and poppler-utils (pdftotext, pdftoppm) for the
# report tests. Installed with apt-get only when one is missing (run as root or with sudo).
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libfontconfig1 \
	fonts-dejavu-core poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install system clean

system:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "not a Debian system: install pango, harfbuzz, fontconfig, DejaVu fonts and poppler-utils yourself"; \
	else \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:" $$missing; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: system $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

# The standard comparison: every shipped rule set against the 2025 status quo (the
# baseline, with the national rules in force) on the 10 October 2025 scenario (30 seeds):
# the repeals of those rules (repeal-esma-2018, repeal-fca-2021, repeal-japan-2020,
# repeal-cftc-2020: baseline minus repeal is what each rule does) and the proposals added
# to the baseline; then its brief (brief.pdf and brief.html).
RULE_SETS := $(filter-out status-quo-2025,$(basename $(notdir $(wildcard policies/*.yaml))))
DEMO_OUT := outputs/october-2025-standard
# The sensitivity step's size (benchmarks/README.md: it adds about 5 minutes on two idle
# cores at the scenario's 20,000 traders): 2 seeds, the assumptions varied for one rule set
# acting on the market and one acting on access; the ranking on september-2025 covers all.
SENSITIVITY_SEEDS := 2
SENSITIVITY_RULE_SETS := circuit-breaker-proposal us-onshoring-2025

# --force: the demo's folder is the project's own, replaced on every run (a results folder
# belongs to one experiment; without --force a different one is refused).
# Then how robust it is (policylab sensitivity): the differences of SENSITIVITY_RULE_SETS at
# the ends of each assumption's documented range and every rule set's ranking on
# september-2025; that step writes the brief with its "How robust" section (so compare
# skips writing one). Its last line is the sensitivity step's own "brief: <folder>/brief.pdf"
# (printed once).
demo: install
	$(BIN)/policylab compare $(RULE_SETS) --scenario october-2025 --out $(DEMO_OUT) --force --no-brief
	$(BIN)/policylab sensitivity $(DEMO_OUT) --second-scenario september-2025 --seeds $(SENSITIVITY_SEEDS) $(addprefix --rule-set ,$(SENSITIVITY_RULE_SETS))

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
