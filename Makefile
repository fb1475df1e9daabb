# essqpv — commandes du README
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installe

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml requirements-addok.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,adresses]'
	# addok without its pin on a source-only python-geohash (see pyproject.toml): no compiler
	$(BIN)/pip install --quiet --no-deps -r requirements-addok.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/essqpv demo --sortie demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# essqpv against the peers (polars + shapely, DuckDB + spatial) at 1 M, 5 M and 40 M
# establishments (registers generated once, ~20 GB; ESSQPV_BENCH_DONNEES to put them elsewhere);
# the core build, without the publication plan's protection, which the peers do not do
bench: $(STAMP)
	nice $(BIN)/python benchmarks/national.py --echelle 1000000,5000000,40000000 \
	    --etapes serie,cache --coeur

clean:
	rm -rf $(VENV) demo .pytest_cache
