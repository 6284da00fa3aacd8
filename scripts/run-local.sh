#!/usr/bin/env bash
# Run Stocklet locally (`make run`): PostgreSQL (found or started by ensure-postgres.sh)
# and nats-server with nats/nats-server.conf (JetStream data in .data/nats), in the
# foreground until Ctrl-C, then stop what it started and exit.
#
# Environment: NATS_SERVER_BIN (default .tools/bin/nats-server, see `make tools`),
#              DATABASE_URL and the STOCKLET_* overrides of ensure-postgres.sh, CARGO.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

NATS_SERVER_BIN="${NATS_SERVER_BIN:-$REPO_ROOT/.tools/bin/nats-server}"
NATS_CONF="$REPO_ROOT/nats/nats-server.conf"
NATS_PORT=14222 # as in nats/nats-server.conf (listen)
NATS_URL="nats://127.0.0.1:$NATS_PORT"
NATS_LOG="$REPO_ROOT/.data/nats-server.log"
CARGO="${CARGO:-cargo}"

log() { echo "run-local: $*" >&2; }
die() { log "error: $*"; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

[[ -x "$NATS_SERVER_BIN" ]] || die "nats-server not found at $NATS_SERVER_BIN; run \`make tools\` or set NATS_SERVER_BIN"
port_open "$NATS_PORT" && die "something already listens on 127.0.0.1:$NATS_PORT (another \`make run\`?)"

DATABASE_URL="$(scripts/ensure-postgres.sh)"
export DATABASE_URL NATS_URL

mkdir -p .data/nats
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local pid
    # Stop in reverse start order; nats-server shuts down cleanly on SIGTERM.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[i]}"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    log "stopped (PostgreSQL is left running; \`make clean-data\` stops a private one)"
}
trap cleanup EXIT
trap 'exit 0' INT # Ctrl-C is the normal way to stop
trap 'exit 0' TERM

log "starting $("$NATS_SERVER_BIN" --version) with $NATS_CONF (log: $NATS_LOG)"
"$NATS_SERVER_BIN" -c "$NATS_CONF" >>"$NATS_LOG" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
for _ in $(seq 1 100); do
    port_open "$NATS_PORT" && break
    kill -0 "$NATS_PID" 2>/dev/null || die "nats-server exited; last log lines:
$(tail -n 20 "$NATS_LOG")"
    sleep 0.1
done
port_open "$NATS_PORT" || die "nats-server did not listen on $NATS_PORT within 10s; see $NATS_LOG"

log "building the all-in-one stocklet binary (release)"
"$CARGO" build --release --bin stocklet
STOCKLET_LOG="$REPO_ROOT/.data/stocklet.log"
target/release/stocklet >>"$STOCKLET_LOG" 2>&1 &
PIDS+=("$!")

cat <<EOF
Stocklet local environment is up:
  NATS_URL=$NATS_URL        (monitoring: http://127.0.0.1:18222, JetStream data: .data/nats)
  DATABASE_URL=$DATABASE_URL
Press Ctrl-C to stop.
EOF

# Wait until Ctrl-C (trap exits, cleanup stops everything) or a process dies.
while true; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited unexpectedly; see $NATS_LOG"
    done
    sleep 1 &
    wait $! || true
done
