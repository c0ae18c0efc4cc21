# Quick start:  make demo   (end-to-end signed update on real MicroPython)
#               make test   (every test, under CPython and under MicroPython)
PY3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed
DEVICE_SRC := $(shell find agent hal boards -name '*.py' 2>/dev/null)

.PHONY: all venv mpy testdata herdsman test test-cpython test-micropython demo bench powercut deploy clean

all: test

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	$(PY3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

mpy: $(STAMP)
	$(PY) -m host_tools.mpy --out build/mpy

build/mpy/.stamp: $(STAMP) $(DEVICE_SRC)
	$(PY) -m host_tools.mpy --out build/mpy --quiet
	touch $@

build/testdata/.stamp: $(STAMP) $(wildcard tests/datagen/*.py) $(shell find agent -name "*.py") $(wildcard host_tools/*.py) $(wildcard boards/*/*.py)
	$(PY) -m tests.datagen build/testdata

testdata: build/testdata/.stamp

# zigbee-herdsman (the OTA code Zigbee2MQTT runs), pinned in tests/herdsman/package-lock.json,
# for the tests only: its image parser and OTA server against our files and device.
HERDSMAN := tests/herdsman/node_modules/.stamp
$(HERDSMAN): tests/herdsman/package.json tests/herdsman/package-lock.json
	@cd tests/herdsman && npm ci --ignore-scripts --no-audit --no-fund --silent
	@touch $@

herdsman: $(HERDSMAN)

test-cpython: build/testdata/.stamp $(HERDSMAN)
	$(PY) -m pytest tests

test-micropython: build/mpy/.stamp build/testdata/.stamp
	$(MP) -X heapsize=16M tests/mprun.py

test: build/mpy/.stamp build/testdata/.stamp $(HERDSMAN)
	@$(PY) tests/run_both.py
	@$(PY) -m host_tools.mcu status

demo: $(STAMP)
	$(PY) -m host_tools.demo

bench: $(STAMP) build/mpy/.stamp
	$(PY) -m host_tools bench

# The full power-cut campaign: a 256 KiB update, every phase, cut and torn at every flash
# operation, every write unit and both erased values, plus random multi-cut runs.
powercut: build/testdata/.stamp
	$(PY) tests/datagen/pem.py build/testdata/core_pub.bin build/testdata/core_pub.pem
	$(PY) -m host_tools powercut --image build/testdata/core_256k.ota \
	    --from build/testdata/core_v1.ota --public build/testdata/core_pub.pem \
	    --phase all --tear --alignment 1,4,8,16 --erased 0xff,0x00 \
	    --random-cuts 5 --seeds 20 --json > build/powercut.json
	@$(PY) -c "import json; r=json.load(open('build/powercut.json')); print({k: r[k] for k in ('cut_points','torn_points','bricked','lost_confirmed_image','resumed_from_zero','max_extra_erases','seconds')})"

# make deploy BOARD=esp32 PORT=/dev/ttyUSB0 PUB=pub.pem
deploy: $(STAMP)
	$(PY) -m host_tools deploy --board $(BOARD) --port $(PORT) $(if $(PUB),--public $(PUB))

clean:
	rm -rf build .venv

# The Cortex-M tier: MicroPython's qemu port (MPS2_AN385, Cortex-M3) under qemu-system-arm.
# Source: MICROPYTHON_SRC (a folder or .tgz), else a shallow fetch of the pinned commit.
.PHONY: mcu test-mcu bench-mcu
mcu: $(STAMP)
	@$(PY) -m host_tools.mcu check
	MICROPYTHON_SRC="$(MICROPYTHON_SRC)" $(PY) -m host_tools.mcu build

test-mcu: mcu build/testdata/.stamp
	$(PY) tests/mcutier.py
	$(PY) -m pytest -rs tests/host/test_host_mcu_ceiling.py

bench-mcu: mcu build/testdata/.stamp
	$(PY) -m host_tools.bench_mcu --out bench/mcu.json
