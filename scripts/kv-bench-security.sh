#!/usr/bin/env bash
# Security's cost (issue 13): the same 3-node cluster of `kvstore node` processes on loopback
# (3 partitions, replication 3, fsync on), `kvstore bench` at 64 clients, 50% GET, 100-byte
# values, run alternately with `--insecure` and no password, and with peer TLS (shared secret)
# plus a client password (`--requirepass-file`, the bench sending AUTH). Prints each run and the
# ratio of the sums, secured / insecure, all measured in this one sitting.
#
#   scripts/kv-bench-security.sh                  # 2 rounds of 8 s
#   ROUNDS=3 DURATION=10 scripts/kv-bench-security.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
BASE_PEER=27401
BASE_CLIENT=26401
kv_binary

# One run: starts the cluster with the given node arguments, benches it (with BENCH_ARGS),
# stops it; prints the report and sets OPS to its throughput.
run() {
  local label=$1; shift
  kv_cluster_start kv-bench-security "$@"
  local report
  # shellcheck disable=SC2086
  report=$("$KVSTORE" bench --endpoints "$ENDPOINTS" --clients 64 --read-ratio 0.5 --populate \
    --keys 5000 --duration "$DURATION" ${BENCH_ARGS:-} 2>/dev/null | grep -v ' now$')
  kv_cluster_cleanup
  trap - EXIT
  echo "== $label"
  echo "$report" | tail -4
  OPS=$(grep -oE 'throughput +[0-9]+' <<<"$report" | grep -oE '[0-9]+$')
}

insecure=0
secured=0
for round in $(seq 1 "$ROUNDS"); do
  BENCH_ARGS="" run "round $round: --insecure, no password" --insecure
  insecure=$((insecure + OPS))
  password=$(mktemp /tmp/kv-bench-pass.XXXXXX)
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$password"
  BENCH_ARGS="-a $(cat "$password")" REDISCLI_AUTH="$(cat "$password")" \
    run "round $round: peer TLS (shared secret) + requirepass" --requirepass-file "$password"
  rm -f "$password"
  secured=$((secured + OPS))
done
echo "== secured / insecure: $secured / $insecure ops = $(awk "BEGIN { printf \"%.2f\", $secured / $insecure }")x"
