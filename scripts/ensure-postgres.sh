#!/usr/bin/env bash
# Print a working PostgreSQL DATABASE_URL on stdout (and nothing else), starting a
# private server if needed. Every message goes to stderr. Order of preference:
#   1. $DATABASE_URL, if set: it must accept connections, else we fail.
#   2. A server on 127.0.0.1:5432 that accepts user postgres (trust auth):
#      postgres://postgres@127.0.0.1:5432/postgres
#   3. A private cluster in $STOCKLET_DATA_DIR/postgres (default .data/postgres):
#      initdb'd on first use (trust auth, superuser postgres, unix socket inside
#      the data dir), started with pg_ctl, logging to $STOCKLET_DATA_DIR/postgres.log,
#      on 127.0.0.1:$STOCKLET_PG_PORT (default 15432). Reused when already running.
#      As root, initdb/pg_ctl run as the `postgres` system user (initdb refuses root).
#
# Environment overrides:
#   DATABASE_URL               use this server (step 1)
#   STOCKLET_PG_FORCE_PRIVATE  =1: ignore DATABASE_URL and :5432, always use the private
#                              cluster (to exercise step 3 on a machine that has a server)
#   STOCKLET_DATA_DIR          where the private cluster lives (default <repo>/.data)
#   STOCKLET_PG_PORT           private cluster port (default 15432)
#
# Usage: export DATABASE_URL="$(scripts/ensure-postgres.sh)"
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${STOCKLET_DATA_DIR:-$REPO_ROOT/.data}"
PG_PORT="${STOCKLET_PG_PORT:-15432}"
PG_DIR="$DATA_DIR/postgres"
PG_LOG="$DATA_DIR/postgres.log"
PG_SOCK_DIR="$DATA_DIR/postgres-run"
DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"

log() { echo "ensure-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }
redact() { sed -E 's#(://[^:/@]*:)[^@/]*@#\1***@#; s#(password=)[^&]*#\1***#' <<<"$1"; }

# Directory with the server binaries (initdb, pg_ctl): pg_config's, else the newest
# /usr/lib/postgresql/*/bin that has initdb.
find_pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return; fi
    fi
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return; fi
    dir="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
    [[ -x "$dir/initdb" ]] && { echo "$dir"; return; }
    return 1
}
PG_BIN="$(find_pg_bindir || true)"

# Can we run a query at this URL? psql if available (proves auth too), else pg_isready.
can_connect() {
    local url="$1" psql pg_isready
    psql="$(command -v psql || echo "$PG_BIN/psql")"
    if [[ -x "$psql" ]]; then
        PGCONNECT_TIMEOUT=3 "$psql" "$url" -XAtqc 'select 1' >/dev/null 2>&1
        return
    fi
    pg_isready="$(command -v pg_isready || echo "$PG_BIN/pg_isready")"
    [[ -x "$pg_isready" ]] || die "neither psql nor pg_isready found (install postgresql-client)"
    "$pg_isready" -q -t 3 -d "$url"
}

# Run a command as the cluster owner: the postgres system user when we are root.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ "${STOCKLET_PG_FORCE_PRIVATE:-0}" != 1 ]]; then
    if [[ -n "${DATABASE_URL:-}" ]]; then
        can_connect "$DATABASE_URL" \
            || die "DATABASE_URL=$(redact "$DATABASE_URL") does not accept connections (is the server up, are user/password/database right?). Unset DATABASE_URL to use or start a local server."
        log "using DATABASE_URL from the environment"
        echo "$DATABASE_URL"
        exit 0
    fi
    if can_connect "$DEFAULT_URL"; then
        log "using the PostgreSQL on 127.0.0.1:5432"
        echo "$DEFAULT_URL"
        exit 0
    fi
    log "nothing usable on 127.0.0.1:5432; using a private cluster in $PG_DIR"
fi

PRIVATE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
[[ -n "$PG_BIN" ]] || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install e.g. Debian's postgresql package, or set DATABASE_URL"

if can_connect "$PRIVATE_URL"; then
    log "private cluster already running on 127.0.0.1:$PG_PORT"
    echo "$PRIVATE_URL"
    exit 0
fi

mkdir -p "$DATA_DIR" "$PG_DIR" "$PG_SOCK_DIR"
touch "$PG_LOG"
if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' system user to own the cluster"
    chown -R postgres: "$PG_DIR" "$PG_SOCK_DIR" "$PG_LOG"
    chmod 700 "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" \
        || die "the postgres user cannot reach $PG_DIR (a parent directory is not traversable); set STOCKLET_DATA_DIR to a directory it can reach"
fi

# A unix socket path is limited to ~107 bytes; with a deep checkout use TCP only.
SOCK_DIRS="$PG_SOCK_DIR"
(( ${#PG_SOCK_DIR} + 20 > 107 )) && SOCK_DIRS=""

if [[ ! -f "$PG_DIR/PG_VERSION" ]]; then
    log "initdb $PG_DIR ($("$PG_BIN/initdb" --version))"
    as_owner "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2 \
        || die "initdb failed"
    cat >>"$PG_DIR/postgresql.conf" <<EOF

# --- stocklet private dev/test cluster (scripts/ensure-postgres.sh) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCK_DIRS'
max_connections = 200
EOF
fi

if as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    # Running, yet not reachable on $PG_PORT: started with another port, or still busy.
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR" -w -t 30 -m fast restart -l "$PG_LOG" -o "-p $PG_PORT" >&2 \
        || die "could not restart the private cluster; see $PG_LOG"
else
    log "starting private cluster on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR" -w -t 60 start -l "$PG_LOG" -o "-p $PG_PORT" >&2 \
        || die "pg_ctl start failed (port $PG_PORT in use?); last log lines:
$(tail -n 20 "$PG_LOG" 2>/dev/null)"
fi

for _ in $(seq 1 50); do
    if can_connect "$PRIVATE_URL"; then echo "$PRIVATE_URL"; exit 0; fi
    sleep 0.2
done
die "private cluster started but $PRIVATE_URL does not accept connections; see $PG_LOG"
