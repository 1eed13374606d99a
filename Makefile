# Two commands do all the set-up on a fresh clone:  make demo  and  make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATA := Datasets/demo
DEMO_OUT := output/demo

.PHONY: venv demo demo-data test bench adaptation clean

# Bytecode is cached in .venv on first import (of the modules actually used) rather than compiled for every
# installed file by pip: about 30 s less to install. So the commands below run without
# PYTHONDONTWRITEBYTECODE, which would make every process compile torch again (11 s instead of 3 s to start).
unexport PYTHONDONTWRITEBYTECODE

# The venv is rebuilt when requirements.txt or pyproject.toml change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --no-build-isolation --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo-data: venv
	$(PY) Datasets/make_demo.py --out $(DEMO_DATA) --seed 0 --force

# Generate the demo data, train the three stages, evaluate on the three test sets.
demo: demo-data
	rm -rf $(DEMO_OUT)
	PYTHON=$(PY) CONFIG=configs/demo.yml DATA_PATH=$(DEMO_DATA) OUTPUT_ROOT=$(DEMO_OUT) bash train.sh
	PYTHON=$(PY) CONFIG=configs/demo.yml DATA_PATH=$(DEMO_DATA) bash test.sh $(DEMO_OUT)/stage3/checkpoint/best.pth $(DEMO_OUT)/test
	@echo "This table is a pipeline check (9 CPU epochs from random weights; another CPU gives other digits), not"
	@echo "evidence that adaptation helps: that is 'make adaptation' (README: Does label-free adaptation help?)."

test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/eval_speed.py

# Does label-free adaptation help? Stages 1-2-3 against a longer stage 1, AdaBN, ablations (3 of the seeds) and a
# labelled ceiling, 5 seeds, chosen on the dev split, reported on the test split (README: the measured time).
adaptation: demo-data
	$(PY) benchmarks/adaptation.py --jobs 3 --ablation-seeds 3

clean:
	rm -rf $(DEMO_OUT) $(DEMO_DATA)
