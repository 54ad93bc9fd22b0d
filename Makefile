# One command for the main job (make demo), one for the tests (make test). Both create .venv,
# install torch unless the venv already sees one (the CPU wheel torch==2.13.0 by default; install
# a CUDA build yourself first on a GPU machine), then cfxl.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: install demo test bench workbooks pictures clean

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

install: $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,excel]"

# The demo's workbooks carry a fixed date, so they are the same file by file as the committed
# ones in workbooks/ (tests/test_workbooks.py checks that).
DEMO_DATE ?= 1767225600

demo: install
	SOURCE_DATE_EPOCH=$(DEMO_DATE) $(VENV)/bin/cfxl demo

# The tests, then the recompute-and-compare tests again with another training seed, so that a
# tolerance that only holds for one run's numbers shows up.
test: install
	$(PY) -m pytest -q
	CFXL_TEST_SEED=7 $(PY) -m pytest -q -m recompute

# Regenerate the committed example workbooks (a fixed date keeps them identical run to run) and
# their golden snapshot; then `make pictures` for the README's pictures.
workbooks: install
	SOURCE_DATE_EPOCH=$(DEMO_DATE) $(VENV)/bin/cfxl demo -q
	$(PY) -m pytest -q tests/test_workbooks.py --update-snapshots

# The README's pictures, from the committed workbooks as they are (run `make workbooks` first to
# refresh those); the regions are the table at the top of docs/render_pictures.py. Needs
# pdftoppm: apt-get install -y --no-install-recommends poppler-utils
pictures: install
	$(PY) docs/render_pictures.py workbooks

bench: install
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
