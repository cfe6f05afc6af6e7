#!/bin/sh
# Lint, type-check and run the whole test suite (unit, integration on real runc/nginx/redis,
# and end to end). Needs root for the integration and end-to-end tests.
set -eu
cd "$(dirname "$0")/.."
.venv/bin/ruff check paas tests bench
.venv/bin/mypy
(cd ansible && PATH="$PWD/../.venv/bin:$PATH" ANSIBLE_CONFIG=ansible.cfg ansible-lint -q site.yml)
exec .venv/bin/pytest "$@"
