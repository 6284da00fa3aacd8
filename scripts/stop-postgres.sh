#!/usr/bin/env bash
# Stop the private PostgreSQL cluster that scripts/ensure-postgres.sh may have started in
# $STOCKLET_DATA_DIR/postgres (default .data/postgres). No-op when there is none or it is
# not running. Never touches any other server (e.g. the system one on :5432).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${STOCKLET_DATA_DIR:-$REPO_ROOT/.data}"
PG_DIR="$DATA_DIR/postgres"

log() { echo "stop-postgres: $*" >&2; }

if [[ ! -f "$PG_DIR/PG_VERSION" ]]; then
    log "no private cluster in $PG_DIR"
    exit 0
fi

PG_BIN=""
if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then
    PG_BIN="$(pg_config --bindir)"
else
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
[[ -x "$PG_BIN/pg_ctl" ]] || { log "error: pg_ctl not found"; exit 1; }

as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "stopping private cluster in $PG_DIR"
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR" -w -t 60 -m fast stop >&2
else
    log "private cluster in $PG_DIR is not running"
fi
