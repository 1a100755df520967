#!/usr/bin/env bash
# Runs the service on a fresh machine: installs what is missing, starts a
# private Postgres and nats-server under .data/ (or uses DATABASE_URL /
# NATS_URL if given) and runs `vcintel serve`, which applies pending
# migrations before it starts. `--demo` first seeds a sample workspace for
# demo@vcintel.dev (password: VCINTEL_DEMO_PASSWORD, or a random one kept in
# .data/demo_password). `--replica` adds a streaming replica of the private
# Postgres that serves the read models' queries (VCINTEL_READ_DATABASE_URL);
# `--nats-cluster` starts a three-node JetStream cluster instead of one
# server (streams then keep three copies). The other arguments go to
# `vcintel serve`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

demo=false replica=false nats_cluster=false
while [ $# -gt 0 ]; do
    case "$1" in
        --demo) demo=true ;;
        --replica) replica=true ;;
        --nats-cluster) nats_cluster=true ;;
        *) break ;;
    esac
    shift
done

ensure_rust
[ -n "${DATABASE_URL:-}" ] || ensure_postgres_binaries
[ -n "${NATS_URL:-}" ] || ensure_nats_server

if [ -z "${DATABASE_URL:-}" ]; then
    start_private_postgres "$ROOT/.data/pg"
    if $replica; then start_private_postgres_replica "$ROOT/.data/pg-replica"; fi
elif $replica; then
    die "--replica starts a replica of the private Postgres; with DATABASE_URL set VCINTEL_READ_DATABASE_URL instead"
fi
if [ -z "${NATS_URL:-}" ]; then
    if $nats_cluster; then
        start_private_nats_cluster "$ROOT/.data/nats-cluster"
    else
        start_private_nats "$ROOT/.data/nats"
    fi
fi

if [ -z "${VCINTEL_JWT_SECRET:-}" ]; then
    # A per-checkout random key, kept out of the repo (.data is git-ignored).
    mkdir -p "$ROOT/.data"
    [ -s "$ROOT/.data/jwt_secret" ] || (umask 077; head -c 48 /dev/urandom | base64 -w0 > "$ROOT/.data/jwt_secret")
    VCINTEL_JWT_SECRET="$(cat "$ROOT/.data/jwt_secret")"
    export VCINTEL_JWT_SECRET
fi
if [ -z "${VCINTEL_PRIVACY_MASTER_KEY:-}" ]; then
    # The key that wraps every person's data key (docs/privacy.md): lose it
    # and every personal value in the store is unreadable, so a deployment
    # sets it from its secret store and backs it up apart from the data.
    mkdir -p "$ROOT/.data"
    [ -s "$ROOT/.data/privacy_master_key" ] || (umask 077; head -c 32 /dev/urandom | base64 -w0 > "$ROOT/.data/privacy_master_key")
    VCINTEL_PRIVACY_MASTER_KEY="$(cat "$ROOT/.data/privacy_master_key")"
    export VCINTEL_PRIVACY_MASTER_KEY
fi
export VCINTEL_BIND="${VCINTEL_BIND:-127.0.0.1:8080}"
# A local run: without VCINTEL_SMTP_URL, verification links are logged
# (development only). Deployments set VCINTEL_ENVIRONMENT=production.
export VCINTEL_ENVIRONMENT="${VCINTEL_ENVIRONMENT:-development}"

log "building vcintel"
cargo build --locked -p vcintel_api --bin vcintel
BIN="$CARGO_TARGET_DIR/debug/vcintel"

if $demo; then
    if [ -z "${VCINTEL_DEMO_PASSWORD:-}" ]; then
        [ -s "$ROOT/.data/demo_password" ] || (umask 077; echo "Demo-$(head -c 18 /dev/urandom | base64 -w0 | tr '+/' '-_')" > "$ROOT/.data/demo_password")
        VCINTEL_DEMO_PASSWORD="$(cat "$ROOT/.data/demo_password")"
        export VCINTEL_DEMO_PASSWORD
        log "demo password: in $ROOT/.data/demo_password"
    fi
    "$BIN" demo seed
fi

port="${VCINTEL_BIND##*:}"
log "API:        http://127.0.0.1:$port/v1/companies"
log "Swagger UI: http://127.0.0.1:$port/docs"
log "OpenAPI:    http://127.0.0.1:$port/openapi.json"
log "Health:     http://127.0.0.1:$port/health  (ready: /health/ready)"
log "Sign up:    curl -X POST http://127.0.0.1:$port/v1/auth/register -H 'content-type: application/json' -d '{\"email\":\"you@fund.example\",\"password\":\"a long pass phrase\",\"name\":\"You\"}'"
exec "$BIN" serve "$@"
