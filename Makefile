# make test: what CI runs (no GPU needed). make gpu: the whole GPU suite on a GPU machine.
SHELL := /bin/bash
PYTHON ?= python3
BENCH_FLAGS ?=
LAYERS ?= $(shell $(PYTHON) -c "from harness.registry import layers; print(' '.join(layers()))" 2>/dev/null)

.PHONY: install test test-kernels notebooks gpu gpu-lent gpu-sanitize gpu-compile gpu-tests gpu-bench gpu-notebooks gpu-train gpu-ncu gpu-summary gpu-pack device-wheels docs clean-cache

install:
	$(PYTHON) -m pip install -r requirements.txt

# Compile checks, references, harness logic; GPU tests skip with their reason; notebooks run top to bottom.
test:
	$(PYTHON) -m pytest kernels harness reference trainer
	$(PYTHON) -m pytest --nbmake notebooks

test-kernels:
	$(PYTHON) -m pytest kernels

notebooks:
	$(PYTHON) -m pytest --nbmake --overwrite notebooks

# On a GPU machine: correctness of every variant, the benchmarks of every layer (saved to results/),
# the notebooks executed, the training run, logs under $(LOGS), and a short summary printed last.
# The parts are targets of their own, so a machine with a per-command time limit can run them in turn.
# (LOGS, not OUT: a lent device machine sets OUT in the environment, and make would take it.)
LOGS ?= gpu-out
gpu: gpu-tests gpu-sanitize gpu-bench gpu-notebooks gpu-train gpu-ncu gpu-summary

# On a lent GPU machine whose commands may run a few minutes: every stage that fits in BUDGET seconds,
# each stopped when it overruns its share, then the summary and (with PACK=dir) dir/gpu-results.tgz.
# STAGES="tests notebooks" picks and orders stages (harness/gpu_suite.py); BENCH_LAYERS="layernorm gelu"
# the layers the bench stage measures (what an earlier, stopped bench stage did not reach).
BUDGET ?= 540
gpu-lent:
	$(PYTHON) -m harness.gpu_suite --budget $(BUDGET) --logs $(LOGS) --data $(DATA) \
	  $(if $(PACK),--pack $(PACK)) $(if $(STAGES),--stages $(STAGES)) $(if $(BENCH_LAYERS),--layers $(BENCH_LAYERS))

# Every variant compiled first, one process per core: the tests then find them in the cubin cache.
gpu-compile:
	mkdir -p $(LOGS)
	$(PYTHON) bench.py --compile-only --arch native > $(LOGS)/compile.log 2>&1; rc=$$?; tail -1 $(LOGS)/compile.log; exit $$rc

gpu-tests: gpu-compile
	mkdir -p $(LOGS)
	$(PYTHON) -m pytest kernels harness reference trainer -m "not emulated and not nvrtc" -q -rs --junitxml=$(LOGS)/pytest.xml 2>&1 | tee $(LOGS)/pytest.log; \
	  echo $${PIPESTATUS[0]} > $(LOGS)/pytest.rc

# compute-sanitizer over every kernel variant at the small test shapes: memcheck (out-of-bounds and
# misaligned accesses), then racecheck (shared-memory races on the GPU's own schedule). torch's
# caching allocator is off, so an access past a buffer's end is out of bounds, not in a neighbour.
# A finding is recorded (LOGS/sanitize-*.rc, the summary) and `make gpu` goes on, as with the tests.
SANITIZER ?= $(shell command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
gpu-sanitize:
	mkdir -p $(LOGS)
	for tool in memcheck racecheck; do \
	  PYTORCH_NO_CUDA_MEMORY_CACHING=1 $(SANITIZER) --tool $$tool --report-api-errors no --error-exitcode 9 \
	    $(PYTHON) -m harness.sanitize --first-config $$([ $$tool = racecheck ] && echo --shared-memory-only) 2>&1 \
	    | tee $(LOGS)/sanitize-$$tool.log; \
	  echo $${PIPESTATUS[0]} > $(LOGS)/sanitize-$$tool.rc; \
	done

gpu-bench:
	mkdir -p $(LOGS)
	for layer in $(LAYERS); do \
	  PYTHONUNBUFFERED=1 $(PYTHON) bench.py $$layer --save --json $(LOGS)/bench-$$layer.json $(BENCH_FLAGS) 2>&1 | tee $(LOGS)/bench-$$layer.log; \
	done

# The benchmark cells time every variant with torch.compile baselines: more than nbmake's default 300 s a cell.
gpu-notebooks:
	mkdir -p $(LOGS)
	set -o pipefail; $(PYTHON) -m pytest --nbmake --nbmake-timeout=900 notebooks -q 2>&1 | tee $(LOGS)/notebooks.log

gpu-summary:
	$(PYTHON) -m harness.summary $(LOGS)

# Nsight Compute's view of two ladder steps (bench.py --ncu); NCU=/path/to/ncu where it is not on PATH.
gpu-ncu:
	mkdir -p $(LOGS)
	set -o pipefail; $(PYTHON) bench.py layernorm.forward --variant 5 --ncu 2>&1 | tee $(LOGS)/ncu.log
	set -o pipefail; $(PYTHON) bench.py attention.forward --variant 3 --dtype bf16 --ncu 2>&1 | tee $(LOGS)/ncu-attention.log
	set -o pipefail; $(PYTHON) bench.py matmul.forward --variant 6 --dtype bf16 --ncu 2>&1 | tee $(LOGS)/ncu-matmul.log

# GPT-2 124M, B=32, T=1024, bf16, with the kernels bench.py --select picks from this GPU's results:
# 40 steps on tiny shakespeare with the per-op profile; the log and its table go to results/. DATA holds
# tinyshakespeare.txt and gpt2.tiktoken where there is no network. Checkpoints stay in $(LOGS)/run.
DATA ?= ../shared/data
gpu-train:
	mkdir -p $(LOGS)
	$(PYTHON) trainer/prepro.py tinyshakespeare --input $(DATA)/tinyshakespeare.txt --vocab $(DATA)/gpt2.tiktoken
	$(PYTHON) bench.py --select best.yaml
	set -o pipefail; PYTHONUNBUFFERED=1 $(PYTHON) trainer/train.py --model d12 --kernels best.yaml --dtype bf16 \
	  --batch-size 32 --seq-len 1024 --max-steps 40 --val-every 20 --sample-every 40 --profile \
	  --vocab $(DATA)/gpt2.tiktoken --out-dir $(LOGS)/run 2>&1 | tee $(LOGS)/train.log
	$(PYTHON) -m trainer.results $(LOGS)/train.log

# One file to bring back from a machine that returns few files (a lent device's $OUT takes 8):
# results/ (to commit) and the logs, without checkpoints. make gpu-pack PACK=$OUT
gpu-pack:
	@test -n "$(PACK)" || { echo "give PACK=folder for gpu-results.tgz"; exit 2; }
	tar -czf $(PACK)/gpu-results.tgz results best.yaml $$(ls $(LOGS)/*.log $(LOGS)/*.json $(LOGS)/*.xml $(LOGS)/*.rc 2>/dev/null) \
	  --ignore-failed-read
	@ls -l $(PACK)/gpu-results.tgz

# Wheels the GPU device machine lacks (it has no network): the notebook runner and the Jupyter kernel,
# for its Python 3.12. Carry .whl/ and install them there first (see README, "Running on a lent GPU").
device-wheels:
	rm -rf .whl && mkdir -p .whl
	$(PYTHON) -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl nbmake ipykernel
	# the device image already has these (KINDS.md); carrying them would shadow its versions
	cd .whl && rm -f pytest-* pluggy-* iniconfig-* packaging-* pygments-* typing_extensions-* psutil-* \
	  python_dateutil-* attrs-* tzdata-*
	du -sh .whl

docs:
	$(PYTHON) -m harness.readme

clean-cache:
	rm -rf $${WORKBENCH_CACHE:-$$HOME/.cache/cuda-workbench}
