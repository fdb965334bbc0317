#!/usr/bin/env bash
# Memory under sustained writes (issue 12): a 3-node cluster of `kvstore node` processes on
# loopback (3 partitions, replication 3, fsync on), `kvstore bench` writing 1 KiB values to
# 10k keys for DURATION seconds, then each node's peak and current RSS (VmHWM, VmRSS) against
# the live data (keys x value size, every node holds every partition here).
#
#   scripts/kv-rss.sh                 # 60 s of writes (about a million at ~17k/s)
#   DURATION=20 scripts/kv-rss.sh
#   NODE_FLAGS="--log-cache 4mb" scripts/kv-rss.sh   # flags for every node
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh

DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-64}
KEYS=${KEYS:-10000}
SIZE=${SIZE:-1024}
BASE_PEER=${BASE_PEER:-17501}
BASE_CLIENT=${BASE_CLIENT:-16579}
kv_binary

# shellcheck disable=SC2086  # NODE_FLAGS is a list of words
kv_cluster_start kv-rss ${NODE_FLAGS:-}

"$KVSTORE" bench --endpoints "$ENDPOINTS" --clients "$CLIENTS" --duration "$DURATION" \
  --warmup 0 --keys "$KEYS" --read-ratio 0 --value-size "$SIZE" | grep -E 'throughput|latency'
live=$((KEYS * SIZE))
for i in 0 1 2; do
  pid=${PIDS[$i]}
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  awk -v n="$i" -v h="$hwm" -v r="$rss" -v l="$live" 'BEGIN {
    printf "node %d: peak RSS %.0f MiB, now %.0f MiB; live data %.1f MiB; peak / live %.1f\n",
      n, h / 1024, r / 1024, l / 1048576, h * 1024 / l }'
done
