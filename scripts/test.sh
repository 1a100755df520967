#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing,
# starts a private Postgres and nats-server for this run (or uses
# DATABASE_URL / NATS_URL if given), runs every test, stops what it started.
#
# Tests create a database per test from a migrated template, and a stream
# prefix per test, so they run in parallel without seeing each other.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_contract_tools
start_throwaway_services test-run
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
