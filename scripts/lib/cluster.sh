# Sourced by the scripts in scripts/: a 3-node cluster of `kvstore node` processes on loopback
# (3 partitions, replication 3, fsync on unless the node arguments say otherwise), killed and
# its data removed when the script exits.
#
#   source "$(dirname "$0")/lib/cluster.sh"
#   kv_binary                       # sets KVSTORE: a release build, unless KVSTORE is set
#   kv_cluster_start kv-name [node arguments...]
#   ... "$KVSTORE" bench --endpoints "$ENDPOINTS" ...; the node pids are in PIDS, data in DATA
#
# Ports: peers at BASE_PEER, BASE_PEER+1, BASE_PEER+2, clients at BASE_CLIENT, ... (the caller
# sets both, one pair of ranges per script so that two scripts can run at once).

# Sets KVSTORE to the release binary, building it, unless the caller set KVSTORE.
kv_binary() {
  if [ -z "${KVSTORE:-}" ]; then
    cargo build --release -q -p kvstore-app --bin kvstore
    KVSTORE="${CARGO_TARGET_DIR:-target}/release/kvstore"
  fi
}

# KEEP_DATA=1 keeps the data directory and the node logs (the path is printed).
kv_cluster_cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_DATA:-}" ]; then echo "data and logs kept in $DATA" >&2; else rm -rf "$DATA"; fi
}

# Starts the three nodes with data under a new /tmp/<name>.XXXXXX (DATA; node i logs to
# $DATA/n<i>.log), passes the remaining arguments to every node (with a shared secret minted for
# the run unless they name a peer authentication mode), and waits (up to 20 s) until
# every partition group has a leader. Sets DATA, PIDS and ENDPOINTS (the client addresses,
# comma-separated).
kv_cluster_start() {
  local name=$1; shift
  DATA=$(mktemp -d "/tmp/$name.XXXXXX")
  PIDS=()
  trap kv_cluster_cleanup EXIT
  ENDPOINTS=""
  local i peer client role out auth=()
  # Peers must authenticate: unless the caller chose a mode (--insecure, mutual TLS or its own
  # secret), the nodes share a secret minted for this run.
  if [[ " $* " != *" --insecure "* && " $* " != *" --peer-tls-cert "* \
        && " $* " != *" --cluster-secret-file "* && -z "${KVSTORE_CLUSTER_SECRET:-}" ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA/secret")
    auth=(--cluster-secret-file "$DATA/secret")
  fi
  for i in 0 1 2; do
    peer="127.0.0.1:$((BASE_PEER + i))"
    client="127.0.0.1:$((BASE_CLIENT + i))"
    if [ "$i" = 0 ]; then role=(--expect 3); else role=(--join "127.0.0.1:$BASE_PEER"); fi
    RUST_LOG=${RUST_LOG:-warn} "$KVSTORE" node --peer "$peer" --client "$client" \
      --data-dir "$DATA/n$i" "${role[@]}" "${auth[@]}" "$@" >"$DATA/n$i.log" 2>&1 &
    PIDS+=($!)
    ENDPOINTS="${ENDPOINTS:+$ENDPOINTS,}$client"
  done
  for _ in $(seq 1 100); do
    out=$("$KVSTORE" status --endpoints "$ENDPOINTS" 2>/dev/null || true)
    if [ "$(grep -c ' leader 127' <<<"$out")" = 3 ]; then break; fi
    sleep 0.2
  done
}
