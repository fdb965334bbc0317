#!/usr/bin/env bash
# Snapshots off the hot path (issue 12): write latency while replicas snapshot a large store.
#
# A 3-node cluster of `kvstore node` processes on loopback (3 partitions, replication 3, fsync
# on) is filled with STORE_MB of values (SIZE bytes each), with snapshots by size only and a
# trigger (SNAPSHOT_BYTES, default 1.5x the store's size) that the fill does not reach: each replica
# picks its threshold between half and all of the trigger, and the fill writes a third of the
# store to each partition, so the first snapshots come some 45 s or more into the overwrites.
# Then CLIENTS clients overwrite the same keys, one second at a time
# (`kvstore bench --duration 1`), until every replica has snapshotted once and a few seconds
# more. Each node logs when a replica starts a snapshot and when it is durable; a second is
# "during" if any snapshot was in progress in it, "before" if it came before the first one.
# Prints the per-second figures and the ratio of write p99 during snapshots to before, and
# whether any partition changed leader or epoch.
#
#   scripts/kv-snapshot-bench.sh                       # 1 GiB store, 4 KiB values, 64 clients
#   STORE_MB=256 scripts/kv-snapshot-bench.sh          # a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/cluster.sh
source scripts/lib/cluster.sh

STORE_MB=${STORE_MB:-1024}
SIZE=${SIZE:-4096}
CLIENTS=${CLIENTS:-64}
SECONDS_MAX=${SECONDS_MAX:-240}
AFTER=${AFTER:-5}
SNAPSHOT_BYTES=${SNAPSHOT_BYTES:-$((STORE_MB * 3 << 19))}
BASE_PEER=${BASE_PEER:-17601}
BASE_CLIENT=${BASE_CLIENT:-16679}
KEYS=$(( (STORE_MB << 20) / SIZE ))
kv_binary

# The replicas' and Zab's info lines say when each snapshot starts and ends.
RUST_LOG="warn,kvstore_app::replica=info,zab_components::component=info" \
  kv_cluster_start kv-snapshot-bench --snapshot-entries 0 --snapshot-bytes "$SNAPSHOT_BYTES"
leaders() { "$KVSTORE" status --endpoints "$ENDPOINTS" 2>/dev/null | grep ' leader 127' | sed 's/ zxid.*//' || true; }

echo "== filling $STORE_MB MiB: $KEYS keys of $SIZE bytes"
start=$(date +%s.%N)
"$KVSTORE" bench --endpoints "$ENDPOINTS" --clients "$CLIENTS" --duration 0 --warmup 0 \
  --keys "$KEYS" --read-ratio 0 --value-size "$SIZE" --populate >/dev/null
echo "filled in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
before_leaders=$(leaders)

echo "== overwriting, one second at a time, until every replica has snapshotted"
: >"$DATA/seconds"
for _ in $(seq 1 "$SECONDS_MAX"); do
  t0=$(date +%s.%N)
  out=$("$KVSTORE" bench --endpoints "$ENDPOINTS" --clients "$CLIENTS" --duration 1 \
    --warmup 0 --keys "$KEYS" --read-ratio 0 --value-size "$SIZE" 2>&1 || true)
  t1=$(date +%s.%N)
  ops=$(awk '$1 == "throughput" { print $2; exit }' <<<"$out")
  p99=$(awk '$1 == "latency" { print $6; exit }' <<<"$out")
  errors=$(awk '$1 == "errors" { print $2; exit }' <<<"$out")
  echo "$t0 $t1 ${ops:-0} ${p99:-0} ${errors:-none}" >>"$DATA/seconds"
  durable=$(cat "$DATA"/n*.log | grep -c 'durable' || true)
  if [ "$durable" -ge 9 ]; then
    AFTER=$((AFTER - 1))
    [ "$AFTER" -le 0 ] && break
  fi
done
after_leaders=$(leaders)

python3 - "$DATA" <<'EOF'
import datetime, glob, re, statistics, sys
data = sys.argv[1]
def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
spans = []
for path in sorted(glob.glob(f"{data}/n*.log")):
    started = {}
    for line in open(path):
        m = re.match(r"\[(\S+) INFO\s+\S+\] p(\d+): snapshot at (\S+): ", line)
        if m:
            started[(m.group(2), m.group(3))] = ts(m.group(1))
        m = re.match(r"\[(\S+) INFO\s+\S+\] zab group (\d+): snapshot at (\S+) durable \((\d+) bytes",
                     line)
        if m and (m.group(2), m.group(3)) in started:
            begin = started.pop((m.group(2), m.group(3)))
            spans.append((begin, ts(m.group(1)), path.split("/")[-1][:-4], m.group(2), int(m.group(4))))
spans.sort()
first = spans[0][0] if spans else float("inf")
before, during = [], []
for line in open(f"{data}/seconds"):
    t0, t1, ops, p99, errors = line.split()
    t0, t1, ops, p99 = float(t0), float(t1), float(ops), float(p99)
    if t1 <= first:
        before.append((ops, p99))
    elif any(b < t1 and e > t0 for b, e, *_ in spans):
        during.append((ops, p99))
    if errors != "none":
        print(f"errors in the second at {t0:.0f}: {errors}")
print(f"snapshots: {len(spans)}")
for b, e, node, group, size in spans:
    print(f"  {node} p{group}: {size / 1e6:.0f} MB, {e - b:.1f} s from request to durable")
def show(name, rows):
    if not rows:
        print(f"{name}: no seconds"); return None
    p99s = [p for _, p in rows]
    print(f"{name}: {len(rows)} s, {statistics.mean(o for o, _ in rows):.0f} SET/s, "
          f"p99 per second: median {statistics.median(p99s):.2f} ms, max {max(p99s):.2f} ms")
    return statistics.median(p99s), max(p99s)
b, d = show("before", before), show("during", during)
if b and d:
    print(f"ratio during/before: median p99 {d[0] / b[0]:.2f}x, max p99 {d[1] / b[1]:.2f}x")
EOF
if [ "$before_leaders" = "$after_leaders" ]; then
  echo "leaders and epochs unchanged:"; echo "$after_leaders"
else
  echo "LEADERS CHANGED"; echo "before:"; echo "$before_leaders"; echo "after:"; echo "$after_leaders"
fi
