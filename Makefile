# Two commands matter: `make serve` (sets itself up, serves on $PORT or 8000) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
MODEL ?= unet
DATA ?= ../shared/data/ct-ich

.PHONY: install install-dev serve test train evaluate export-onnx bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-train.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime          ## runtime only (service + CLI, no TensorFlow)

install-dev: $(VENV)/.dev          ## training, tests, benchmarks

serve: install                     ## start the web service on $(PORT)
	PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py "app:create_app()"

test: install-dev                  ## every test (browser tests skip without Chromium)
	$(PY) -m pytest -q

train: install-dev
	$(PY) -m training.train --model $(MODEL) --data $(DATA) --out model/weights
	$(PY) -m model export-onnx --model $(MODEL)

evaluate: install-dev
	$(PY) -m training.evaluate --model $(MODEL) --data $(DATA) --folds 5 --out reports

export-onnx: install-dev
	$(PY) -m model export-onnx --model all

bench: install-dev
	$(PY) -m bench

lint: install-dev
	$(VENV)/bin/hadolint Dockerfile

clean:
	rm -rf $(VENV) .pytest_cache
