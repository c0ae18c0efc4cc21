# Quick start:  make demo   (end-to-end signed update on real MicroPython)
#               make test   (every test, under CPython and under MicroPython)
PY3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.installed
DEVICE_SRC := $(shell find agent hal boards -name '*.py' 2>/dev/null)

.PHONY: all venv mpy testdata test test-cpython test-micropython demo clean

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

build/testdata/.stamp: $(STAMP) $(wildcard tests/datagen/*.py) $(wildcard agent/*.py) $(wildcard host_tools/*.py)
	$(PY) -m tests.datagen build/testdata

testdata: build/testdata/.stamp

test-cpython: build/testdata/.stamp
	$(PY) -m pytest tests

test-micropython: build/mpy/.stamp build/testdata/.stamp
	$(MP) tests/mprun.py

test: build/mpy/.stamp build/testdata/.stamp
	@$(PY) tests/run_both.py

demo: $(STAMP)
	$(PY) -m host_tools demo

clean:
	rm -rf build .venv
