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
ensure_nextest
start_throwaway_services test-run
# One process per test: tests set process-wide state (the metrics
# recorder, failpoints), and a failing one cannot take others with it.
cargo nextest run --workspace --locked --no-fail-fast "$@"
