# make test: what CI runs (no GPU needed). make gpu: the whole GPU suite on a GPU machine.
SHELL := /bin/bash
PYTHON ?= python3
OUT ?= gpu-out
LAYERS ?= layernorm

.PHONY: install test test-kernels notebooks gpu docs clean-cache

install:
	$(PYTHON) -m pip install -r requirements.txt

# Compile checks, references, harness logic; GPU tests skip with their reason; notebooks run top to bottom.
test:
	$(PYTHON) -m pytest kernels harness reference
	$(PYTHON) -m pytest --nbmake notebooks

test-kernels:
	$(PYTHON) -m pytest kernels

notebooks:
	$(PYTHON) -m pytest --nbmake --overwrite notebooks

# On a GPU machine: correctness of every variant, the benchmarks of every layer (saved to results/),
# the notebooks executed, logs under $(OUT), and a short summary printed last.
gpu:
	mkdir -p $(OUT)
	$(PYTHON) -m pytest kernels harness reference -q -rs --junitxml=$(OUT)/pytest.xml 2>&1 | tee $(OUT)/pytest.log; \
	  echo $${PIPESTATUS[0]} > $(OUT)/pytest.rc
	for layer in $(LAYERS); do \
	  PYTHONUNBUFFERED=1 $(PYTHON) bench.py $$layer --save --json $(OUT)/bench-$$layer.json 2>&1 | tee $(OUT)/bench-$$layer.log; \
	done
	$(PYTHON) -m pytest --nbmake notebooks -q 2>&1 | tee $(OUT)/notebooks.log
	cp results/*.md results/*.json $(OUT)/ 2>/dev/null || true
	$(PYTHON) -m harness.summary $(OUT)

docs:
	$(PYTHON) -m harness.readme

clean-cache:
	rm -rf $${WORKBENCH_CACHE:-$$HOME/.cache/cuda-workbench}
