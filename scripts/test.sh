#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing,
# starts a private Postgres and nats-server for this run (or uses
# DATABASE_URL / NATS_URL if given), runs every test, stops what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_postgres_binaries
ensure_nats_server

RUN_DIR="$ROOT/.data/test-run"
cleanup() { stop_private_nats; stop_private_postgres; }
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ] || [ -z "${NATS_URL:-}" ]; then
    rm -rf "$RUN_DIR"
fi
[ -n "${DATABASE_URL:-}" ] || start_private_postgres "$RUN_DIR/pg"
[ -n "${NATS_URL:-}" ] || start_private_nats "$RUN_DIR/nats"
log "Postgres: $DATABASE_URL"
log "NATS:     $NATS_URL"

# Tests create a database per test from a migrated template, and a stream
# prefix per test, so they run in parallel without seeing each other.
export TEST_DATABASE_URL="$DATABASE_URL" TEST_NATS_URL="$NATS_URL"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi
