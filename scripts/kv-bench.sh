#!/usr/bin/env bash
# The store's benchmark matrix (issue 6): a 3-node cluster of `kvstore node` processes on
# loopback, 3 partitions, replication 3, fsync on; `kvstore bench` at 1, 16 and 64 clients for
# 100% SET and 100% GET (100-byte values), then `redis-benchmark -t set,get` if installed.
# Prints each run's figures and the CPU time the three nodes used during it.
#
#   scripts/kv-bench.sh                  # 10 s per run
#   DURATION=5 CLIENTS="16 64" scripts/kv-bench.sh
#   KVSTORE=target/release/kvstore NODE_ARGS=--no-fsync scripts/kv-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-"1 16 64"}
KEYS=${KEYS:-10000}
NODE_ARGS=${NODE_ARGS:-}
BASE_PEER=${BASE_PEER:-17301}
BASE_CLIENT=${BASE_CLIENT:-16379}
kv_binary

# NODE_ARGS is a list of words.
# shellcheck disable=SC2086
kv_cluster_start kv-bench $NODE_ARGS
"$KVSTORE" status --endpoints "$ENDPOINTS" || true

# CPU seconds (user + system) used by the node processes so far.
cpu() {
  local total=0 ticks
  for pid in "${PIDS[@]}"; do
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    total=$((total + ticks))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

run() {
  local label=$1; shift
  local before after start end
  before=$(cpu); start=$(date +%s.%N)
  "$@"
  after=$(cpu); end=$(date +%s.%N)
  awk -v b="$before" -v a="$after" -v s="$start" -v e="$end" -v hz="$HZ" -v l="$label" \
    'BEGIN { printf "   %s: nodes used %.2f cores (%.1f CPU s over %.1f s)\n", l, (a-b)/hz/(e-s), (a-b)/hz, e-s }'
}

"$KVSTORE" bench --endpoints "$ENDPOINTS" --clients 16 --duration 1 --warmup 0 \
  --keys "$KEYS" --read-ratio 1 --populate >/dev/null
for ratio in 0 1; do
  for c in $CLIENTS; do
    name=$([ "$ratio" = 0 ] && echo SET || echo GET)
    echo "== $name, $c clients"
    run "$name x$c" "$KVSTORE" bench --endpoints "$ENDPOINTS" --clients "$c" \
      --duration "$DURATION" --warmup 1 --keys "$KEYS" --read-ratio "$ratio"
  done
done

if command -v redis-benchmark >/dev/null; then
  echo "== redis-benchmark -t set,get -c 50 -n 100000 -d 100 -r $KEYS (node 1)"
  redis_bench() {
    redis-benchmark -p "$BASE_CLIENT" -t set,get -c 50 -n 100000 -d 100 -r "$KEYS" -q \
      | tr '\r' '\n' | grep "requests per second"
  }
  run "redis-benchmark" redis_bench
fi
