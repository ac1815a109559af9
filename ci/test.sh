#!/usr/bin/env bash
# Install everything from scratch into a fresh venv, lint, and run the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

# The local Fargate enforces security groups with iptables (as root); without it the
# security-group tests skip, saying why.
if [ "$(id -u)" -eq 0 ] && ! command -v iptables >/dev/null; then
    apt-get update -q && apt-get install -y -q iptables
fi

python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip

run_tests() {
    # The README's test command:
    pip install -e ".[test]" && pytest
}

set +e
run_tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing the run" >&2
    exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"
ruff check starburst_dask tests benchmarks examples
ruff format --check starburst_dask tests benchmarks examples docs/conf.py
# Checked types (configuration in pyproject.toml).
mypy
# The API reference, from the docstrings: a warning fails the build.
pip install -e ".[docs]"
docs_out="$(mktemp -d)"
sphinx-build -W --keep-going -q -b html docs "$docs_out"
rm -rf "$docs_out"
