"""Benchmarks of the platform against the parts it is built on; run with `make bench`."""
