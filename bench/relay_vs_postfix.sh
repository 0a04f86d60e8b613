#!/usr/bin/env bash
# Relay benchmark: submission -> queue -> SMTP client -> a sink, postamt
# side by side with Debian's Postfix in one run, loopback only.
#
# usage: bench/relay_vs_postfix.sh   (as root: Postfix's master starts as
#                                     root; installs postfix if missing)
# env:   COUNT=10000 messages, DOMAINS=100 destination domains,
#        CONNS=32 submitting connections, SIZE=4096 body bytes,
#        KEEP=1 keeps the temp dir, BENCH_REV labels the summary.
#
# Workload: examples/relay_load submits COUNT messages over CONNS
# connections, message n to user<n>@d<n mod DOMAINS>.bench, each stamped
# with its submission time. Domain dI.bench has its own MX host at
# 127.0.0.(I+1) (postamt: through a test DNS server, tests/clients/
# dns_server.py; Postfix: the same hosts as transport_maps nexthops, since
# Postfix cannot ask a DNS server on another port), so both MTAs see
# DOMAINS destinations with their default concurrency of 20 each. The sink
# (examples/relay_sink) listens on all those addresses, takes every message,
# and prints throughput (first submission to last arrival) and queue
# latency percentiles (arrival minus submission stamp).
#
# postamt submits with AUTH PLAIN (its submission service requires it);
# Postfix accepts from 127.0.0.0/8 without AUTH (mynetworks). Both queue
# durably (fsync) before answering 250. TLS is off on both sides (the sink
# offers no STARTTLS).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/bench/lib.sh"
COUNT=${COUNT:-10000}
DOMAINS=${DOMAINS:-100}
CONNS=${CONNS:-32}
SIZE=${SIZE:-4096}

[ -x /usr/sbin/postfix ] || {
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
}
python3 -c "import dnslib" 2>/dev/null || python3 -m pip install -q dnslib

cargo build --release --bin postamt --example relay_load --example relay_sink 2>&1 | tail -1
BIN=$ROOT/target/release
TMP=$(mktemp -d /tmp/relay-bench.XXXXXX)
chmod 755 "$TMP"   # Postfix drops to its own user
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sh crates/postamt/tests/clients/postfix_instance.sh stop "$TMP/postfix" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

# The zone: dI.bench MX mxI.bench, mxI.bench A 127.0.0.(I+1).
python3 - "$DOMAINS" >"$TMP/zone.json" <<'PY'
import json, sys
n = int(sys.argv[1])
z = {}
for i in range(n):
    z[f"d{i}.bench"] = {"MX": [[10, f"mx{i}.bench"]]}
    z[f"mx{i}.bench"] = {"A": [f"127.0.0.{i + 1}"]}
print(json.dumps(z))
PY
python3 crates/postamt/tests/clients/dns_server.py "$TMP/zone.json" >"$TMP/dns.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/dns.out" 2>/dev/null && break; sleep 0.1; done
DNS_PORT=$(awk '/ready/ {print $2}' "$TMP/dns.out")

start_sink() {
  SINK_PORT=$(free_port)
  "$BIN/examples/relay_sink" "$SINK_PORT" "$DOMAINS" "$COUNT" >"$TMP/sink-$1.out" 2>&1 &
  SINK_PID=$!
  PIDS+=($SINK_PID)
  for _ in $(seq 100); do grep -q ready "$TMP/sink-$1.out" 2>/dev/null && break; sleep 0.05; done
}

wait_sink() {
  local i=0
  while kill -0 "$SINK_PID" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 6000 ] || { echo "sink did not get all $COUNT messages" >&2; cat "$TMP/sink-$1.out"; exit 1; }
    sleep 0.1
  done
  grep received "$TMP/sink-$1.out"
}

echo "== postamt $(git rev-parse --short HEAD) : $COUNT messages, $DOMAINS domains, $CONNS connections, $SIZE bytes"
start_sink postamt
SUB_PORT=$(free_port)
mkdir -p "$TMP/postamt"
cat >"$TMP/postamt/postamt.toml" <<TOML
hostname = "mta.bench"
domains = ["example.test"]
data_dir = "$TMP/postamt"
[listen]
submission = "127.0.0.1:$SUB_PORT"
[limits]
max_connections_per_ip = 1000
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[relay]
port = $SINK_PORT
tls = "off"
TOML
echo benchpw | "$BIN/postamt" --config "$TMP/postamt/postamt.toml" user add bench@example.test --password-stdin >/dev/null
POSTAMT_LOG=${POSTAMT_LOG:-warn} "$BIN/postamt" --config "$TMP/postamt/postamt.toml" serve >"$TMP/postamt.out" 2>"$TMP/postamt.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/postamt.out" 2>/dev/null && break; sleep 0.1; done
"$BIN/examples/relay_load" "127.0.0.1:$SUB_PORT" "$COUNT" "$CONNS" "$DOMAINS" "$SIZE" bench@example.test bench@example.test benchpw
P_RESULT=$(wait_sink postamt)
echo "$P_RESULT"

echo "== Postfix $(postconf -d -h mail_version)"
start_sink postfix
PF_PORT=$(free_port)
sh crates/postamt/tests/clients/postfix_instance.sh create "$TMP/postfix" "$PF_PORT" "smtp:[127.0.0.1]:$SINK_PORT" d0.bench
MAP=$(python3 -c "import sys; n=int(sys.argv[1]); p=sys.argv[2]; print(', '.join(f'd{i}.bench=smtp:[127.0.0.{i+1}]:{p}' for i in range(n)))" "$DOMAINS" "$SINK_PORT")
postconf -c "$TMP/postfix/etc" -e "transport_maps = inline:{ $MAP }" \
  "smtp_tls_security_level = none" "default_process_limit = 200" \
  "smtpd_client_connection_count_limit = 0" "smtp_connection_cache_on_demand = yes" \
  "queue_run_delay = 60s" "minimal_backoff_time = 60s" "maximal_backoff_time = 600s"
sh crates/postamt/tests/clients/postfix_instance.sh start "$TMP/postfix" || { cat "$TMP/postfix/maillog" 2>/dev/null | tail -20; exit 1; }
"$BIN/examples/relay_load" "127.0.0.1:$PF_PORT" "$COUNT" "$CONNS" "$DOMAINS" "$SIZE" bench@example.test
F_RESULT=$(wait_sink postfix)
echo "$F_RESULT"

rate() { sed -E 's/.*s: ([0-9]+) msg\/s.*/\1/' <<<"$1"; }
echo
echo "summary (${BENCH_REV:-$(git rev-parse --short HEAD)}): postamt $(rate "$P_RESULT") msg/s, Postfix $(rate "$F_RESULT") msg/s"
