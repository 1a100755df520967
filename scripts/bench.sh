#!/usr/bin/env bash
# Runs the spine, identity, search, enrichment, rebuild and scale benchmarks (figures only, no pass/fail) against a private
# Postgres and nats-server, or DATABASE_URL / NATS_URL if given.
# BENCH_SECONDS (per phase, default 10); BENCH_SIZES (the spine benchmark's
# stored sizes, default 10000,100000,1000000 events).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
start_throwaway_services bench-run
cargo bench --locked -p vcintel_api --bench spine
cargo bench --locked -p vcintel_api --bench identity
cargo bench --locked -p vcintel_api --bench search
cargo bench --locked -p vcintel_api --bench enrichment
cargo bench --locked -p vcintel_api --bench rebuild
cargo bench --locked -p vcintel_api --bench scale
