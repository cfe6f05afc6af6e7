.PHONY: setup run test bench

setup:
	scripts/setup.sh

run: setup
	.venv/bin/paas-platform run

test: setup
	scripts/test.sh

bench: setup
	.venv/bin/python bench/run.py
