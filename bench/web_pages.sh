#!/usr/bin/env bash
# The web interface benchmark (issue 17): page times on a 100,000-message
# mailbox, and SMTP delivery with and without 1,000 browsers following a
# live transcript. Loopback only. See bench/README.md, section "The web
# interface".
#
# usage: bench/web_pages.sh    (installs postfix for smtp-source if missing)
# It does not build anything: it uses the prebuilt postamt from BIN_DIR
# (`cargo build --release --bins -p postamt` makes it).
#
# env:   BIN_DIR=...       where `postamt` is; default target/release
#        N_BIG=100000      messages in the mailbox
#        SIZE=4096         ~bytes per message
#        BATCH=500         messages per MULTIAPPEND command
#        ROUNDS=50         timed requests per page (after one warm-up)
#        FOLLOWERS=1000    browsers following a live transcript
#        N_BIG=1000 with the follower part only of interest: a quick run
#        SMTP_COUNT=20000  messages per smtp-source run (4 KB, 32 sessions)
#        FILL_TIMEOUT=1800 INDEX_TIMEOUT=1800   seconds at most
#        KEEP=1            keep the temp dir
#
# Page times are measured by the client on loopback, from sending the
# request to the last byte of the response, over one keep-alive
# connection: an upper bound of the server's time. The mailbox is filled
# over IMAP (MULTIAPPEND) with the SEARCH benchmark's messages, and the
# full-text indexer is waited for before anything is measured. Delivery is
# measured twice with the same smtp-source command into the same server
# (transcripts on both times): alone, then while FOLLOWERS connections ask
# for the transcript's new rows once a second, as the page's script does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BIN_DIR=${BIN_DIR:-$ROOT/target/release}
N_BIG=${N_BIG:-100000}
SIZE=${SIZE:-4096}
BATCH=${BATCH:-500}
ROUNDS=${ROUNDS:-50}
FOLLOWERS=${FOLLOWERS:-1000}
SMTP_COUNT=${SMTP_COUNT:-20000}
FILL_TIMEOUT=${FILL_TIMEOUT:-1800}
INDEX_TIMEOUT=${INDEX_TIMEOUT:-1800}
PASS=benchpw
USER=w100k@bench.test
SMTP_SOURCE=/usr/sbin/smtp-source

. "$ROOT/bench/lib.sh"

POSTAMT=$BIN_DIR/postamt
[ -x "$POSTAMT" ] || die "missing $POSTAMT (cargo build --release --bins -p postamt, or set BIN_DIR)"
if [ ! -x "$SMTP_SOURCE" ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
fi

T=$(mktemp -d /tmp/webbench.XXXXXX)
POSTAMT_PID=""
FOLLOW_PID=""
HOLD_PID=""
cleanup() {
  local rc=$?
  set +e
  for p in "$FOLLOW_PID" "$HOLD_PID"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  stop_pid "$POSTAMT_PID" 150
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
mkdir -p "$T/msgs" "$T/data"
cp "$ROOT/bench/py/search_bench.py" "$ROOT/bench/py/web_bench.py" "$T/"
SB="python3 $T/search_bench.py"
WB="python3 $T/web_bench.py"
REV=${BENCH_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')}
log "postamt binary: $POSTAMT ($(date -u -r "$POSTAMT" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$POSTAMT" | cut -c1-12)), revision $REV"

P_IMAP=$(free_port); P_HTTP=$(free_port); P_SMTP=$(free_port)
cat >"$T/postamt.toml" <<EOF
hostname = "bench.test"
domains = ["bench.test"]
data_dir = "$T/data"

[listen]
imap = "127.0.0.1:$P_IMAP"
http = "127.0.0.1:$P_HTTP"
smtp = "127.0.0.1:$P_SMTP"

[transcripts]
enabled = true

[web]
admins = ["$USER"]
max_connections = 4000
max_connections_per_ip = 4000

[limits]
max_connections = 4000
max_connections_per_ip = 4000

[relay]
enabled = false

[verify]
spf = "off"
dkim = false
dmarc = "off"
EOF
echo "$PASS" | "$POSTAMT" user add "$USER" --password-stdin --config "$T/postamt.toml" >/dev/null
# A fresh mailbox for every delivery run (a growing one would slow the
# later runs and blur the comparison).
for i in 0 1 2 3 4 5 6; do
  echo "$PASS" | "$POSTAMT" user add "smtp$i@bench.test" --password-stdin --config "$T/postamt.toml" >/dev/null
done

log "generating $N_BIG messages of ~$SIZE B"
timeout 900 $SB gen "$T/msgs" 10 "$N_BIG" "$SIZE" >/dev/null

log "starting postamt"
"$POSTAMT" serve --config "$T/postamt.toml" >"$T/stdout" 2>"$T/stderr" &
POSTAMT_PID=$!
wait_ready "$POSTAMT_PID" "$T"

log "filling $USER by MULTIAPPEND ($BATCH per command)"
FILL=$(timeout "$FILL_TIMEOUT" $SB fill "$P_IMAP" "$USER" "$PASS" "$T/msgs/big.msgs" "$BATCH")
echo "$FILL"
T_LAST=$(sed -n 's/.* t_last=\([^ ]*\).*/\1/p' <<<"$FILL")
log "waiting for the indexer"
timeout $((INDEX_TIMEOUT + 60)) $SB wait_index "$T/data/postamt.db" "$T_LAST" "$POSTAMT_PID" "$INDEX_TIMEOUT"

log "page times ($ROUNDS rounds each)"
PAGES=$(timeout 1800 $WB pages "$P_HTTP" "$USER" "$PASS" "$ROUNDS")
echo "$PAGES"

# A live session to follow: an SMTP connection that greets and waits.
python3 - "$P_SMTP" >/dev/null <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.recv(1000); s.sendall(b"EHLO follower.bench\r\n"); s.recv(1000)
end = time.time() + 3600
while time.time() < end:
    time.sleep(20); s.sendall(b"NOOP\r\n"); s.recv(1000)
PY
HOLD_PID=$!
sleep 1
TID=$(ls "$T/data/transcripts" | grep -- '-smtp.log$' | tail -1 | sed 's/\.log$//')
[ -n "$TID" ] || die "no live SMTP transcript"

# smtp_run N: SMTP_COUNT messages into smtpN@bench.test; prints msg/s.
# Starts once the full-text indexer has caught up with the runs before
# (at nice 19 it would otherwise take CPU from this run, unevenly).
smtp_run() {
  local t0 t1
  timeout 600 $SB wait_index "$T/data/postamt.db" "$(date +%s.%N)" "$POSTAMT_PID" 540 >/dev/null
  t0=$(date +%s.%N)
  timeout 900 "$SMTP_SOURCE" -s 32 -m "$SMTP_COUNT" -l 4096 -f sender@example.org -t "smtp$1@bench.test" "127.0.0.1:$P_SMTP" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$SMTP_COUNT" 'BEGIN {printf "%.0f", n/(b-a)}'
}

log "SMTP warm-up run ($SMTP_COUNT x 4 KB, 32 sessions)"
WARM=$(smtp_run 0)
echo "smtp warm_up msgs_per_s=$WARM"
# Alternating, three pairs: alone, then while the followers wait.
FOLLOW_OUT="$T/follow.out"
ALONE_ALL=(); WITH_ALL=()
for pair in 1 2 3; do
  a=$(smtp_run $((2 * pair - 1))); echo "smtp alone msgs_per_s=$a"
  $WB follow "$P_HTTP" "$USER" "$PASS" "$FOLLOWERS" 45 "$TID" >>"$FOLLOW_OUT" &
  FOLLOW_PID=$!
  sleep 15   # every follower connected and waiting
  w=$(smtp_run $((2 * pair))); echo "smtp with_followers msgs_per_s=$w"
  wait "$FOLLOW_PID" || true
  FOLLOW_PID=""
  ALONE_ALL+=("$a"); WITH_ALL+=("$w")
done
# What following costs the server by itself: its CPU during 30 s of
# 1,000 followers and no mail.
$WB follow "$P_HTTP" "$USER" "$PASS" "$FOLLOWERS" 45 "$TID" >/dev/null &
FOLLOW_PID=$!
sleep 12
C0=$(awk '{print $14 + $15}' "/proc/$POSTAMT_PID/stat")
sleep 30
C1=$(awk '{print $14 + $15}' "/proc/$POSTAMT_PID/stat")
wait "$FOLLOW_PID" || true
FOLLOW_PID=""
IDLE_CPU=$(awk -v a="$C0" -v b="$C1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b-a)/hz}')
echo "postamt CPU while $FOLLOWERS browsers follow, no mail: $IDLE_CPU s in 30 s"
cat "$FOLLOW_OUT"
echo
echo "summary (revision $REV, $(nproc) vCPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)):"
echo "$PAGES" | awk '/^page/ {print "  " $0}'
A_SUM=$(IFS=+; echo "$((${ALONE_ALL[*]}))"); W_SUM=$(IFS=+; echo "$((${WITH_ALL[*]}))")
echo "  SMTP 4 KB x 32: alone ${ALONE_ALL[*]} msg/s, with $FOLLOWERS followers ${WITH_ALL[*]} msg/s ($(awk -v a="$A_SUM" -v b="$W_SUM" 'BEGIN {printf "%.1f", 100*(a-b)/a}') % slower on average)"
echo "  followers: $(tr '\n' ' ' <"$FOLLOW_OUT")"
echo "  postamt CPU while $FOLLOWERS browsers follow a quiet session, no mail: $IDLE_CPU s in 30 s"
