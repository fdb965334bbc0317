#!/usr/bin/env bash
# Large values (issue 12): a 3-node cluster of `kvstore node` processes on loopback, 3
# partitions, replication 3, fsync on; 100% SET with 4 KiB, 64 KiB and 1 MiB values, reported
# as MB/s of values acknowledged. The baseline is this disk's own bandwidth measured in the same
# run, the same way the log writes: sequential writes of the same size, each followed by an
# fdatasync (`dd oflag=dsync`), in the directory the nodes use. Prints the ratio per size.
#
#   scripts/kv-bench-values.sh                   # 8 s per run, 16 clients
#   DURATION=5 CLIENTS=8 SIZES="65536 1048576" scripts/kv-bench-values.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh

DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-16}
SIZES=${SIZES:-"4096 65536 1048576"}
KEYS=${KEYS:-64}
BASE_PEER=${BASE_PEER:-17401}
BASE_CLIENT=${BASE_CLIENT:-16479}
kv_binary

# The disk: MB/s of sequential writes of `size` bytes, each made durable before the next.
disk_mbps() {
  local size=$1 count
  count=$(( (64 << 20) / size )); [ "$count" -lt 16 ] && count=16
  dd if=/dev/zero of="$DATA/dd.bin" bs="$size" count="$count" oflag=dsync 2>&1 \
    | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") t = $(i-1); b = $1 }
           END { printf "%.1f", b / t / 1e6 }'
  rm -f "$DATA/dd.bin"
}

kv_cluster_start kv-bench-values

printf "%-9s %12s %12s %12s %8s %s\n" size ops/s "store MB/s" "disk MB/s" ratio latency
for size in $SIZES; do
  disk=$(disk_mbps "$size")
  out=$("$KVSTORE" bench --endpoints "$ENDPOINTS" --clients "$CLIENTS" --duration "$DURATION" \
    --warmup 1 --keys "$KEYS" --read-ratio 0 --value-size "$size" 2>&1)
  ops=$(awk '/throughput/ { print $2; exit }' <<<"$out")
  lat=$(grep -oE 'p99 [0-9.]+ ms' <<<"$out" | head -1)
  awk -v s="$size" -v o="${ops:-0}" -v d="$disk" -v l="$lat" 'BEGIN {
    m = o * s / 1e6; printf "%-9s %12.0f %12.1f %12.1f %8.2f %s\n", s, o, m, d, (d > 0 ? m / d : 0), l }'
done
# The disk once more, after the runs: the figure moves on a shared machine.
echo "disk MB/s after the runs (1 MiB writes): $(disk_mbps 1048576)"
