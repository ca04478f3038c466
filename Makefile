# Every target sets itself up: a virtual environment in .venv with the project and its tools.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
MODEL   ?= m3vit
BUILD   ?= build
STAMP   := $(VENV)/.installed
JOBS    ?= 2

.PHONY: all venv test test-slow sim gen lint bench clean

all: test

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# WAVES=1 (make variable and environment): the RTL benches dump an FST waveform of each run
# (cocotb benches: dump.fst in the run folder named by a failure; make sim: see below).
WAVES   ?= 0
export WAVES
.PHONY: fst
fst:  # Verilator's FST writer needs lz4.h
	@if [ "$(WAVES)" != 0 ] && [ ! -f /usr/include/lz4.h ]; then \
		apt-get update && apt-get install -y liblz4-dev; fi

test: $(STAMP) fst
	$(BIN)/pytest -n $(JOBS) -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# WAVES=1: the RTL section also dumps an FST waveform per run (BUILD/MODEL/rtl_sim/run<i>/waves.fst,
# for GTKWave or Surfer). An m3vit frame is millions of cycles: EVH_WAVES_FROM / EVH_WAVES_TO
# limit the dump to a cycle window.
sim: $(STAMP) fst
	$(PYTHON) -m edgevit_hw.sim --config $(MODEL) --out $(BUILD)/$(MODEL)

.PHONY: csim
csim: $(STAMP)
	$(PYTHON) -m edgevit_hw.csim --config $(MODEL) --out $(BUILD)/$(MODEL)

gen: $(STAMP)
	$(PYTHON) -m edgevit_hw.gen --config $(MODEL) --out $(BUILD)/$(MODEL)

lint: $(STAMP)
	$(BIN)/ruff check edgevit_hw tests rtl sim hls benchmarks
	$(BIN)/ruff format --check edgevit_hw tests rtl sim hls benchmarks

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_golden.py --config $(MODEL)

.PHONY: synth synth-units bench-rtl
# Yosys (Debian's, installed when missing) synth_xilinx -family xcup of the accelerator top:
# LUT / FF / DSP48E2 / BRAM against the board's capacity and the deepest logic path. Not part
# of `make test`. micro_moe's flat top takes 25-35 min on this 2-core machine; m3vit's had not
# finished mapping after 2 h 40 min (Yosys's opt passes on the flattened design): use
# SYNTH_FLAGS=--per-module (each module mapped on its own, submodules as black boxes: an upper
# bound), best with nice in the background. SYNTH_FLAGS=--nowidelut maps to LUT1-6 only (see benchmarks/synth_rtl.py).
SYNTH_FLAGS ?=
synth: $(STAMP)
	@command -v yosys >/dev/null || (apt-get update && apt-get install -y yosys)
	$(PYTHON) benchmarks/synth_top.py --config $(MODEL) $(SYNTH_FLAGS)

# The same estimate for every RTL unit on its own (LUT/FF/DSP48E2/BRAM, logic levels).
synth-units: $(STAMP)
	@command -v yosys >/dev/null || (apt-get update && apt-get install -y yosys)
	$(PYTHON) benchmarks/synth_rtl.py --config $(MODEL)

# Verilator cycles per output of every RTL unit and simulation speed (cycles/s).
bench-rtl: $(STAMP)
	$(PYTHON) benchmarks/bench_rtl.py --config $(MODEL)

.PHONY: faults
# Fault injection: single-line faults planted one at a time in scratch copies of the repo; reports
# which tests catch each (about an hour on 2 cores; not part of `make test`). E.g.
# make faults FAULTS_ARGS="--only HL01,RT02" or FAULTS_ARGS=--list.
faults: $(STAMP)
	$(PYTHON) benchmarks/fault_injection.py $(FAULTS_ARGS)

.PHONY: digits digits-eval quality
# Train the shipped digits_moe model (CPU, about a minute) and report float / integer accuracy.
digits: $(STAMP)
	$(PYTHON) -m edgevit_hw.apps.digits train

digits-eval: $(STAMP)
	$(PYTHON) -m edgevit_hw.apps.digits eval

# Per-layer SQNR, cosine and accuracy table + PNG in build/<model>/quality.
quality: $(STAMP)
	$(PYTHON) -m edgevit_hw.ml.quality --config $(MODEL) --out $(BUILD)/$(MODEL)/quality

clean:
	rm -rf $(BUILD) .pytest_cache
