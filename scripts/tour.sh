#!/usr/bin/env bash
# The Stocklet curl tour, against a running gateway (`make run` prints it):
# register a new customer, log in, browse the catalogue, have the admin top up
# the balance, place an order, watch it reach APPROVED, view its events.
#
#   scripts/tour.sh [--print] [GATEWAY_URL]    (default http://127.0.0.1:8080)
#
# Without --print it runs every step and checks its result, retrying the steps
# that wait on eventual consistency, and exits non-zero with the step, the
# reason and the last response on the first failure. `make test` runs it
# against a started all-in-one stack (services/stocklet/tests), which keeps
# the README's tour true. With --print it prints the same commands for
# copy-paste instead: they are the ones it runs, from the steps below.
#
# Needs curl and python3 (for JSON). The admin who tops up is the demo admin
# seeded by `make run` (STOCKLET_SEED=true); STOCKLET_ADMIN_EMAIL and
# STOCKLET_ADMIN_PASSWORD override it, as for the stocklet binary.
set -euo pipefail

PRINT=false
if [[ ${1:-} == --print ]]; then
    PRINT=true
    shift
fi
GATEWAY_URL="${1:-http://127.0.0.1:8080}"
ADMIN_EMAIL="${STOCKLET_ADMIN_EMAIL:-admin@example.com}"
ADMIN_PASSWORD="${STOCKLET_ADMIN_PASSWORD:-stocklet-admin}"

STEP=0
LAST="$(mktemp)"
trap 'rm -f "$LAST"' EXIT

fail() {
    echo "tour: FAILED at step $STEP: $*" >&2
    if [[ -s $LAST ]]; then
        echo "tour: last response: $(head -c 2000 "$LAST")" >&2
    fi
    exit 1
}

# step TITLE ATTEMPTS CHECK <<'CMD' ... CMD
# Prints the command (--print), or runs it until CHECK (a bash expression)
# holds, at most ATTEMPTS times one second apart.
step() {
    local title="$1" attempts="$2" check="$3" command
    command="$(cat)"
    STEP=$((STEP + 1))
    if $PRINT; then
        printf '\n# %d. %s\n%s\n' "$STEP" "$title" "$command"
        return
    fi
    echo "tour: $STEP. $title" >&2
    local attempt
    for ((attempt = 1; attempt <= attempts; attempt++)); do
        : >"$LAST"
        if eval "$command" >/dev/null && eval "$check"; then
            return
        fi
        ((attempt < attempts)) && sleep 1
    done
    fail "$title: \`$check\` does not hold after $attempts attempt(s)"
}

if $PRINT; then
    cat <<EOF
# The Stocklet tour (scripts/tour.sh runs exactly these commands and checks them).
# A JSON helper: json FIELD.PATH reads stdin and prints one value.
json() { python3 -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if isinstance(d, str) else json.dumps(d))' "\$1"; }
GW=$GATEWAY_URL
ADMIN_EMAIL=$ADMIN_EMAIL ADMIN_PASSWORD=$ADMIN_PASSWORD
EOF
else
    command -v curl >/dev/null || fail "curl is not installed"
    command -v python3 >/dev/null || fail "python3 is not installed"
    json() {
        python3 -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if isinstance(d, str) else json.dumps(d))' "$1" 2>/dev/null
    }
    # Every response is kept for the failure message; HTTP errors fail.
    curl() { command curl -sS --fail-with-body --max-time 15 "$@" | tee "$LAST"; }
    GW="$GATEWAY_URL"
    EMAIL="" CUSTOMER_ID="" TOKEN="" PRODUCT_ID="" AVAILABLE="" ADMIN_TOKEN="" BALANCE=""
    ORDER_ID="" STATUS="" ENTRIES=""
    command curl -sS --fail --max-time 5 "$GW/readyz" >/dev/null ||
        fail "the gateway at $GW is not ready (is \`make run\` running?)"
fi

step "Register a new customer (a fresh email each time)" 1 '[[ -n $CUSTOMER_ID ]]' <<'CMD'
EMAIL="tour-$(date +%s%N)@example.com"
CUSTOMER_ID=$(curl -s -X POST "$GW/v1/user/register" -H 'content-type: application/json' \
  -d '{"firstName":"Tour","lastName":"Guest","email":"'"$EMAIL"'","password":"tour-password"}' | json user.id)
echo "customer $CUSTOMER_ID"
CMD

step "Log in as the customer (auth learns of the registration moments later)" 20 '[[ -n $TOKEN ]]' <<'CMD'
TOKEN=$(curl -s -X POST "$GW/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"'"$EMAIL"'","password":"tour-password"}' | json accessToken)
CMD

step "Browse the catalogue and pick the first product" 30 '[[ -n $PRODUCT_ID ]]' <<'CMD'
curl -s "$GW/v1/product/list"
PRODUCT_ID=$(curl -s "$GW/v1/product/list" | json products.0.id)
CMD

step "Check its stock" 30 '(( AVAILABLE > 0 ))' <<'CMD'
AVAILABLE=$(curl -s "$GW/v1/warehouse/product/$PRODUCT_ID" | json stock.available)
echo "available: $AVAILABLE"
CMD

step "Log in as the admin" 20 '[[ -n $ADMIN_TOKEN ]]' <<'CMD'
ADMIN_TOKEN=$(curl -s -X POST "$GW/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"'"$ADMIN_EMAIL"'","password":"'"$ADMIN_PASSWORD"'"}' | json accessToken)
CMD

step "Top up the customer's balance by 100.00 (admin only)" 30 '(( BALANCE >= 10000 ))' <<'CMD'
BALANCE=$(curl -s -X POST "$GW/v1/payment/balance/$CUSTOMER_ID/credit" -H "authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/json' -d '{"amountCents":"10000"}' | json balance.balanceCents)
echo "balance: $BALANCE cents"
CMD

step "Place an order for one unit" 1 '[[ -n $ORDER_ID ]]' <<'CMD'
ORDER_ID=$(curl -s -X POST "$GW/v1/order/place" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"'"$PRODUCT_ID"'":"1"}' | json order.id)
echo "order $ORDER_ID"
CMD

step "Watch the order until it is APPROVED (repeat while PROCESSING or PENDING)" 60 \
    '[[ $STATUS == ORDER_STATUS_APPROVED ]] || { [[ $STATUS == ORDER_STATUS_REJECTED ]] && fail "the order was rejected"; false; }' <<'CMD'
STATUS=$(curl -s "$GW/v1/order/orders/$ORDER_ID" -H "authorization: Bearer $TOKEN" | json order.status)
echo "$STATUS"
CMD

step "View the order's events, from every service, oldest first" 10 '(( ENTRIES > 0 ))' <<'CMD'
curl -s "$GW/v1/order/orders/$ORDER_ID/timeline" -H "authorization: Bearer $TOKEN"
ENTRIES=$(curl -s "$GW/v1/order/orders/$ORDER_ID/timeline" -H "authorization: Bearer $TOKEN" | json entries | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
echo "$ENTRIES events"
CMD

if ! $PRINT; then
    echo "tour: OK: customer $CUSTOMER_ID ordered product $PRODUCT_ID; order $ORDER_ID is APPROVED with $ENTRIES events" >&2
fi
