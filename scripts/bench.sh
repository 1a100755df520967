#!/usr/bin/env bash
# Runs the spine benchmark (figures only, no pass/fail) against a private
# Postgres and nats-server, or DATABASE_URL / NATS_URL if given.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_postgres_binaries
ensure_nats_server
RUN_DIR="$ROOT/.data/bench-run"
cleanup() { stop_private_nats; stop_private_postgres; }
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ] || [ -z "${NATS_URL:-}" ]; then rm -rf "$RUN_DIR"; fi
[ -n "${DATABASE_URL:-}" ] || start_private_postgres "$RUN_DIR/pg"
[ -n "${NATS_URL:-}" ] || start_private_nats "$RUN_DIR/nats"
export TEST_DATABASE_URL="$DATABASE_URL" TEST_NATS_URL="$NATS_URL"
cargo bench --locked -p vcintel_api --bench spine
