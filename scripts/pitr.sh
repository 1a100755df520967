#!/usr/bin/env bash
# Point-in-time recovery with Postgres' own machinery: WAL archiving, a base
# backup (pg_basebackup), and a restore that replays the archive up to a
# given time. The README's "Backups and recovery" says when to use it;
# tests/e2e/pitr.rs drills it on a real cluster.
#
#   pitr.sh archive DATABASE_URL ARCHIVE_DIR
#       Turns WAL archiving on (archive_mode, archive_command copying each
#       finished segment into ARCHIVE_DIR). Restart Postgres afterwards:
#       archive_mode only takes effect at start.
#   pitr.sh base-backup DATABASE_URL BACKUP_DIR
#       A base backup of the whole cluster into BACKUP_DIR (plain format,
#       the WAL it needs included), as a consistent starting point.
#   pitr.sh restore BACKUP_DIR ARCHIVE_DIR TARGET_TIME DATA_DIR
#       Prepares DATA_DIR (new) from the base backup to replay the archive
#       up to TARGET_TIME (e.g. "2026-12-07 04:30:00+00") and then accept
#       writes. Start Postgres on DATA_DIR; it recovers, then promotes.
#
# Run as root, the files made are given to the `postgres` user, which
# runs the server. A database URL must name a superuser or a role with
# REPLICATION (pg_basebackup) and ALTER SYSTEM rights.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '7,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

pg_tool() {
    local dir
    dir="$(pg_bindir)" || die "PostgreSQL's programs are not installed (scripts/run.sh installs them)"
    echo "$dir/$1"
}

give_to_postgres() {
    if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then chown -R postgres "$@"; fi
}

command="${1:-}"
shift || true
case "$command" in
archive)
    [ $# -eq 2 ] || usage
    url="$1" archive="$2"
    mkdir -p "$archive"
    archive="$(cd "$archive" && pwd)"
    give_to_postgres "$archive"
    # Never overwrite a segment already archived (a second cluster pointed
    # at the same folder must fail loudly, not corrupt it), and never leave
    # a partial one: copy under a temporary name, then rename.
    psql "$url" -v ON_ERROR_STOP=1 -qc "alter system set wal_level = 'replica'" \
        -c "alter system set archive_mode = 'on'" \
        -c "alter system set archive_timeout = '60s'" \
        -c "alter system set archive_command = 'test ! -f ''$archive/%f'' && cp %p ''$archive/%f.partial'' && mv ''$archive/%f.partial'' ''$archive/%f'''"
    log "archiving into $archive once Postgres restarts (archive_mode takes effect at start)"
    ;;
base-backup)
    [ $# -eq 2 ] || usage
    url="$1" backup="$2"
    [ ! -e "$backup" ] || [ -z "$(ls -A "$backup")" ] || die "$backup is not empty"
    mkdir -p "$backup"
    # Fast checkpoint: start now rather than at the next scheduled one.
    "$(pg_tool pg_basebackup)" -d "$url" -D "$backup" -Fp -X stream -c fast --no-password
    give_to_postgres "$backup"
    log "base backup in $backup (keep it with the WAL archived after it)"
    ;;
restore)
    [ $# -eq 4 ] || usage
    backup="$1" archive="$2" target="$3" data="$4"
    [ -f "$backup/PG_VERSION" ] || die "$backup is not a base backup"
    [ ! -e "$data" ] || [ -z "$(ls -A "$data")" ] || die "$data is not empty"
    archive="$(cd "$archive" && pwd)"
    mkdir -p "$data"
    cp -a "$backup/." "$data/"
    chmod 0700 "$data"
    # Recovery settings: replay the archive up to the target time, then
    # end recovery and accept writes.
    cat >>"$data/postgresql.auto.conf" <<CONF
restore_command = 'cp ''$archive/%f'' %p'
recovery_target_time = '$target'
recovery_target_inclusive = true
recovery_target_action = 'promote'
archive_mode = 'off'
CONF
    touch "$data/recovery.signal"
    give_to_postgres "$data"
    log "start Postgres on $data: it replays the archive up to $target, then accepts writes"
    ;;
*) usage ;;
esac
