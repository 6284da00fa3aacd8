#!/usr/bin/env bash
# Run Stocklet locally (`make run`): PostgreSQL (found or started by ensure-postgres.sh)
# and nats-server with nats/nats-server.conf (JetStream data in .data/nats), in the
# foreground until Ctrl-C, then stop what it started and exit.
#
# Once the gateway is ready it prints its URL and the curl tour (scripts/tour.sh
# --print: the same commands `make test` runs and checks). Demo data is seeded
# (STOCKLET_SEED=true, idempotent: a second run adds nothing); set
# STOCKLET_SEED=false to start empty.
#
# Environment: NATS_SERVER_BIN (default .tools/bin/nats-server, see `make tools`),
#              DATABASE_URL and the STOCKLET_* overrides of ensure-postgres.sh, CARGO,
#              STOCKLET_SEED (default true here), STOCKLET_GATEWAY_ADDR,
#              STOCKLET_AUTH_URL (default: where STOCKLET_AUTH_ADDR listens),
#              STOCKLET_INTERNAL_TOKEN and STOCKLET_<USER>_NATS_PASSWORD for every NATS
#              user (default: generated once into .data/secrets), and every
#              other variable of the stocklet binary (README, Configuration), such as
#              the gateway's rate limits (STOCKLET_GATEWAY_RATE_LIMIT_*,
#              STOCKLET_GATEWAY_ACCOUNT_RATE_LIMIT_*, STOCKLET_GATEWAY_REGISTER_RATE_LIMIT_*,
#              STOCKLET_GATEWAY_TRUSTED_PROXIES; README, Limits and passwords).
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
# Secrets, generated once into .data/secrets unless the environment sets them (no
# default ships in the repo): the services' internal token, and the password of every
# NATS user of nats/permissions.conf (nats-server reads them from its environment).
SECRETS_DIR="$REPO_ROOT/.data/secrets"
mkdir -p "$SECRETS_DIR" && chmod 700 "$SECRETS_DIR"
# secret VARIABLE FILE: exports VARIABLE from the environment, else from FILE (made once).
secret() {
    local variable=$1 file="$SECRETS_DIR/$2"
    if [[ -z ${!variable:-} ]]; then
        if [[ ! -s $file ]]; then
            (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >"$file")
            log "generated $variable into .data/secrets/$2"
        fi
        printf -v "$variable" '%s' "$(<"$file")"
    fi
    export "${variable?}"
}
secret STOCKLET_INTERNAL_TOKEN internal-token
NATS_USERS=(auth user product warehouse order payment shipping provision subscriber)
for user in "${NATS_USERS[@]}"; do
    secret "STOCKLET_${user^^}_NATS_PASSWORD" "nats-$user-password"
done
STOCKLET_SEED="${STOCKLET_SEED:-true}"
# The gateway and every service fetch the JWKS that verifies bearer tokens from here.
STOCKLET_AUTH_URL="${STOCKLET_AUTH_URL:-http://${STOCKLET_AUTH_ADDR:-127.0.0.1:15051}}"
export DATABASE_URL NATS_URL STOCKLET_SEED STOCKLET_AUTH_URL
GATEWAY_URL="http://${STOCKLET_GATEWAY_ADDR:-127.0.0.1:8080}"

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
# Streams first, as the provisioner: the services may only look them up.
log "provisioning streams, schemas and consumers (stocklet provision; log: $STOCKLET_LOG)"
target/release/stocklet provision >>"$STOCKLET_LOG" 2>&1 ||
    die "stocklet provision failed; last log lines:
$(tail -n 20 "$STOCKLET_LOG")"
# The services run without the provisioner's password.
env -u STOCKLET_PROVISION_NATS_PASSWORD target/release/stocklet >>"$STOCKLET_LOG" 2>&1 &
STOCKLET_PID=$!
PIDS+=("$STOCKLET_PID")

log "waiting for the gateway at $GATEWAY_URL/readyz (log: $STOCKLET_LOG)"
for _ in $(seq 1 600); do
    curl -fsS --max-time 2 "$GATEWAY_URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$STOCKLET_PID" 2>/dev/null || die "stocklet exited; last log lines:
$(tail -n 20 "$STOCKLET_LOG")"
    sleep 0.2
done
curl -fsS --max-time 2 "$GATEWAY_URL/readyz" >/dev/null 2>&1 ||
    die "the gateway did not become ready within 2 minutes; see $STOCKLET_LOG"

GRPC_ADDRS=""
port=15051
for service in auth user product warehouse order payment shipping; do
    address_var="STOCKLET_${service^^}_ADDR"
    GRPC_ADDRS+="${GRPC_ADDRS:+, }$service ${!address_var:-127.0.0.1:$port}"
    port=$((port + 1))
done
cat <<EOF
Stocklet local environment is up:
  gateway:  $GATEWAY_URL        (OpenAPI: $GATEWAY_URL/openapi.json)
  gRPC:     $GRPC_ADDRS
            (reflection and health on each; a client signs in with auth's LoginPassword and
            sends "authorization: Bearer <token>": README, "Calling the services over gRPC")
  NATS_URL=$NATS_URL        (monitoring: http://127.0.0.1:18222, JetStream data: .data/nats)
            read-only NATS user for your own subscribers: subscriber, password in
            .data/secrets/nats-subscriber-password (README, "Subscribing to events")
  DATABASE_URL=$DATABASE_URL
EOF
if [[ $STOCKLET_SEED == true ]]; then
    cat <<EOF
  demo data (seeded in the background, see $STOCKLET_LOG):
    admin ${STOCKLET_ADMIN_EMAIL:-admin@example.com} / ${STOCKLET_ADMIN_PASSWORD:-stocklet-admin}
    customers ada@example.com / stocklet-ada, grace@example.com / stocklet-grace

The curl tour (paste into bash; \`scripts/tour.sh $GATEWAY_URL\` runs and checks it):
EOF
    scripts/tour.sh --print "$GATEWAY_URL"
fi
echo
echo "Press Ctrl-C to stop."

# Wait until Ctrl-C (trap exits, cleanup stops everything) or a process dies.
while true; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited unexpectedly; see $NATS_LOG"
    done
    sleep 1 &
    wait $! || true
done
