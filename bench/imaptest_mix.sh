#!/usr/bin/env bash
# IMAP random mix: postamt side by side with Debian's Dovecot 2.3, measured
# with Dovecot's own stress tool imaptest (https://imapwiki.org/ImapTest),
# on this machine, loopback only.
#
# usage: IMAPTEST=/path/to/imaptest bench/imaptest_mix.sh > results.txt
#        (as root: Dovecot's master starts as root; the script runs itself in
#        a private network namespace, `unshare --net`, with only loopback up)
#
# It builds nothing: imaptest must already be built (IMAPTEST, e.g. from
# dovecot/imaptest's release-2.3.21 branch against Debian's dovecot-dev),
# postamt too (`cargo build --release -p postamt`). imaptest's libraries are
# found through LD_LIBRARY_PATH=/usr/lib/dovecot.
#
# env:   IMAPTEST=...   the imaptest binary (required)
#        POSTAMT=...    postamt binary; default target/release/postamt
#        CLIENTS=20     imaptest clients
#        SECS=30        seconds per run
#        ROUNDS=2       runs per cell and server
#        CELLS="reconnect long search long-userip search-userip"
#                       which cells (see CELL_ARGS below)
#
# Cells (imaptest's random mix: LOGIN, SELECT, LIST, STATUS, FETCH, STORE,
# EXPUNGE, APPEND, LOGOUT with imaptest's default probabilities):
#   reconnect  the default: every client logs out and in again
#   long       logout=0: one session per client for the whole run
#   search     logout=0 search=50 sort=30: adds SEARCH and SORT
#   long-userip, search-userip: the same, but Dovecot accepts all CLIENTS
#              sessions of the one test user: its default
#              mail_max_userip_connections = 10 refuses the LOGIN of the
#              other 10 of 20 long sessions (they retry all the time). Only
#              that setting is appended (protocol imap) and Dovecot reloaded
#              before imaptest starts; postamt runs unchanged.
#
# Every run gets a fresh server: postamt's playground (`serve --dev`) in a
# new data dir, or a private Dovecot from the tests' helper
# crates/postamt/tests/clients/dovecot_imap_instance.sh (its config as it
# writes it: no tuning) in a new dir; the other server is not running. Within
# a round the servers alternate who goes first (round 1 postamt first, round
# 2 Dovecot first, ...). The raw imaptest output of every run goes to
# stdout, then a summary: commands/s = sum of the Totals counts / SECS,
# logins/s = LOGIN count / SECS, the ratio postamt/Dovecot, and imaptest's
# error lines grouped (numbers replaced by N).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

: "${IMAPTEST:?set IMAPTEST to a built imaptest binary}"
POSTAMT=${POSTAMT:-$ROOT/target/release/postamt}
CLIENTS=${CLIENTS:-20}
SECS=${SECS:-30}
ROUNDS=${ROUNDS:-2}
CELLS=${CELLS:-"reconnect long search long-userip search-userip"}
DOVECOT_HELPER=$ROOT/crates/postamt/tests/clients/dovecot_imap_instance.sh
DOVECOT_PORT=10143
POSTAMT_PORT=2143 # the playground's IMAP port

. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot must start as root)"
[ -x "$IMAPTEST" ] || die "IMAPTEST=$IMAPTEST is not executable"
[ -x "$POSTAMT" ] || die "missing $POSTAMT"
command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/imap ] || die "dovecot-imapd is not installed"

# A private network namespace: only this script's servers on 127.0.0.1
# (port 2143 of the host's loopback may belong to someone's playground).
if [ -z "${IMAPTEST_MIX_NETNS:-}" ]; then
  exec env IMAPTEST_MIX_NETNS=1 unshare --net bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
export LD_LIBRARY_PATH=/usr/lib/dovecot${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

declare -A CELL_ARGS=(
  [reconnect]=""
  [long]="logout=0"
  [search]="logout=0 search=50 sort=30"
  [long-userip]="logout=0"
  [search-userip]="logout=0 search=50 sort=30"
)
for c in $CELLS; do [ -n "${CELL_ARGS[$c]+x}" ] || die "unknown cell $c"; done

T=$(mktemp -d /tmp/imaptest-mix.XXXXXX)
chmod 755 "$T" # Dovecot's mail user (nobody) must traverse it
POSTAMT_PID=""
DOVECOT_DIR=""
WATCHDOG=""
cleanup() {
  local rc=$?
  set +e
  stop_pid "$POSTAMT_PID" 150
  [ -n "$DOVECOT_DIR" ] && "$DOVECOT_HELPER" stop "$DOVECOT_DIR"
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The mailbox imaptest APPENDs from (200 small text messages).
python3 "$ROOT/bench/py/imaptest_mbox.py" "$T/test.mbox"
MBOX=$T/test.mbox

cpu_busy_idle() { awk '/^cpu / {b=$2+$3+$4+$7+$8; i=$5+$6; print b, i}' /proc/stat; }

start_postamt() { # DIR
  mkdir -p "$1"
  timeout $((SECS + 600)) "$POSTAMT" serve --dev --data-dir "$1/data" >"$1/stdout" 2>"$1/stderr" &
  POSTAMT_PID=$!
  wait_ready "$POSTAMT_PID" "$1"
  wait_port "$POSTAMT_PORT" 30 || die "postamt IMAP not listening"
}
stop_postamt() {
  stop_pid "$POSTAMT_PID" 150
  wait "$POSTAMT_PID" 2>/dev/null || true
  POSTAMT_PID=""
}
start_dovecot() { # DIR [USERIP]
  DOVECOT_DIR=$1/dovecot
  "$DOVECOT_HELPER" start "$DOVECOT_DIR" "$DOVECOT_PORT"
  wait_port "$DOVECOT_PORT" 30 || die "Dovecot not listening"
  if [ -n "${2:-}" ]; then
    printf 'protocol imap {\n  mail_max_userip_connections = %s\n}\n' "$2" >>"$DOVECOT_DIR/dovecot.conf"
    doveconf -c "$DOVECOT_DIR/dovecot.conf" -n >/dev/null || die "Dovecot rejects mail_max_userip_connections"
    doveadm -c "$DOVECOT_DIR/dovecot.conf" reload
    sleep 1
    wait_port "$DOVECOT_PORT" 30 || die "Dovecot not listening after reload"
    echo "(Dovecot: $(doveconf -c "$DOVECOT_DIR/dovecot.conf" -f protocol=imap mail_max_userip_connections), reloaded)"
  fi
  # bounded like postamt: stopped after SECS+600 s whatever happens
  (sleep $((SECS + 600)); "$DOVECOT_HELPER" stop "$DOVECOT_DIR") >/dev/null 2>&1 &
  WATCHDOG=$!
}
stop_dovecot() {
  "$DOVECOT_HELPER" stop "$DOVECOT_DIR"
  kill "$WATCHDOG" 2>/dev/null || true
  wait "$WATCHDOG" 2>/dev/null || true
  WATCHDOG=""
  DOVECOT_DIR=""
}

# ------------------------------------------------------------- header ----
echo "# imaptest random mix: postamt vs Dovecot"
echo "date (UTC):      $(date -u '+%Y-%m-%d %H:%M:%S')"
echo "postamt:         $POSTAMT ($("$POSTAMT" --version), mtime $(date -u -r "$POSTAMT" '+%Y-%m-%d %H:%M:%S') UTC)"
echo "source HEAD:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed/untracked paths)"
echo "Dovecot:         $(dovecot --version)"
echo "imaptest:        $IMAPTEST"
echo "machine:         $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r)"
echo "clients=$CLIENTS secs=$SECS rounds=$ROUNDS cells: $CELLS"
echo "postamt:         playground (serve --dev): alice@postamt.test, its config as is"
echo "                 (Config::dev: transcripts on, [auth] cache_ttl 3600 s, SQLite WAL synchronous=FULL)"
# Dovecot's settings as the helper writes them (one throwaway start to read
# them with doveconf; not a measured run).
start_dovecot "$T/probe"
echo "Dovecot:         dovecot_imap_instance.sh (maildir, passwd-file {PLAIN}, user alice), settings:"
doveconf -c "$T/probe/dovecot/dovecot.conf" auth_cache_size auth_cache_ttl mail_fsync \
  maildir_very_dirty_syncs mmap_disable mail_prefetch_count \
  mail_max_userip_connections "service/imap/process_limit" "service/imap/client_limit" "service/imap-login/service_count" \
  2>&1 | sed 's/^/                 /'
stop_dovecot
rm -rf "$T/probe"
echo

# --------------------------------------------------------------- runs ----
SUMMARY=$T/summary.tsv # cell round server cmds logins cmd/s login/s errors
: >"$SUMMARY"

run_one() { # CELL ROUND SERVER
  local cell=$1 round=$2 server=$3 d="$T/$1-$2-$3" port user rc b0 i0 b1 i1 tf
  mkdir -p "$d"
  if [ "$server" = postamt ]; then
    port=$POSTAMT_PORT; user=alice@postamt.test
  else
    port=$DOVECOT_PORT; user=alice
  fi
  local args="host=127.0.0.1 port=$port user=$user pass=alice mbox=$MBOX clients=$CLIENTS secs=$SECS ${CELL_ARGS[$cell]}"
  echo "=== $cell round $round $server: imaptest $args"
  if [ "$server" = postamt ]; then
    start_postamt "$d"
  else
    case $cell in
      *-userip) start_dovecot "$d" "$CLIENTS" ;;
      *) start_dovecot "$d" ;;
    esac
  fi
  read -r b0 i0 < <(cpu_busy_idle)
  tf=$d/time
  rc=0
  { TIMEFORMAT='%U %S %R'; time (cd "$d" && timeout $((SECS + 90)) "$IMAPTEST" $args >"$d/out.txt" 2>&1); } 2>"$tf" || rc=$?
  read -r b1 i1 < <(cpu_busy_idle)
  if [ "$server" = postamt ]; then
    echo "(postamt: $(ls "$d/data/transcripts" 2>/dev/null | wc -l) transcript files after the run)" >>"$d/out.txt"
    stop_postamt
  else
    stop_dovecot
  fi
  # imaptest's output as it is, except that of error lines that differ only
  # in numbers the first 5 are kept and the rest counted (a refused LOGIN
  # that is retried all the time gives thousands)
  awk '/^(Error|Panic|Fatal|Warning)/ {k = $0; gsub(/[0-9]+/, "N", k)
         if (++n[k] > 5) {el[k]++; next}}
       {print}
       END {for (k in el) printf "[%d more lines like: %s]\n", el[k], substr(k, 1, 160)}' "$d/out.txt"
  echo "imaptest exit: $rc; imaptest CPU user/sys/wall s: $(cat "$tf"); machine busy during the run: $(awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN {printf "%.0f%%", 100*b/(b+i)}') of $(nproc) CPUs"
  # Totals: the header line after "Totals:", then the first line of only
  # integers with as many fields.
  awk -v secs="$SECS" -v cell="$cell" -v round="$round" -v server="$server" '
    /^Totals:/ {t = 1; next}
    t == 1 {nh = split($0, h); t = 2; next}
    t == 2 && NF == nh && $0 ~ /^[ 0-9]+$/ {
      s = 0; lg = 0
      for (i = 1; i <= NF; i++) { s += $i; if (h[i] == "Logi") lg = $i }
      printf "%s\t%s\t%s\t%d\t%d\t%.0f\t%.1f\n", cell, round, server, s, lg, s / secs, lg / secs
      t = 3
    }' "$d/out.txt" >"$d/fig"
  [ -s "$d/fig" ] || printf '%s\t%s\t%s\t0\t0\t0\t0\n' "$cell" "$round" "$server" >"$d/fig"
  local nerr
  nerr=$(grep -cE '^(Error|Panic|Fatal|Warning)' "$d/out.txt" || true)
  printf '%s\t%s\n' "$(cat "$d/fig")" "$nerr" >>"$SUMMARY"
  grep -E '^(Error|Panic|Fatal|Warning)' "$d/out.txt" \
    | sed -E 's/^(Error|Warning|Panic|Fatal): [^ ]*\[[0-9]+\]: /\1: /; s/[0-9]+/N/g' | cut -c1-160 \
    | sort | uniq -c | sort -rn >"$T/errors-$cell-$round-$server" || true
  echo
}

for cell in $CELLS; do
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="postamt dovecot"; else order="dovecot postamt"; fi
    for server in $order; do run_one "$cell" "$round" "$server"; done
  done
done

# ------------------------------------------------------------ summary ----
echo "# Summary (commands/s = sum of imaptest's Totals / $SECS s; logins/s = LOGIN count / $SECS s)"
printf '%-13s %-5s %-8s %9s %7s %8s %8s %7s\n' cell round server commands logins "cmd/s" "login/s" errors
sort -k1,1 -k2,2n -k3,3r "$SUMMARY" | while IFS=$'\t' read -r c r s n l cs ls e; do
  printf '%-13s %-5s %-8s %9s %7s %8s %8s %7s\n' "$c" "$r" "$s" "$n" "$l" "$cs" "$ls" "$e"
done
echo
echo "# postamt/Dovecot per round"
printf '%-13s %-5s %9s %9s\n' cell round "cmd/s" "login/s"
for cell in $CELLS; do
  for round in $(seq 1 "$ROUNDS"); do
    p=$(awk -F'\t' -v c="$cell" -v r="$round" '$1==c && $2==r && $3=="postamt" {print $6, $7}' "$SUMMARY")
    v=$(awk -F'\t' -v c="$cell" -v r="$round" '$1==c && $2==r && $3=="dovecot" {print $6, $7}' "$SUMMARY")
    printf '%-13s %-5s %9s %9s\n' "$cell" "$round" "$(ratio "${p% *}" "${v% *}")" "$(ratio "${p#* }" "${v#* }")"
  done
done
echo
echo "# imaptest errors, grouped (numbers as N)"
for f in "$T"/errors-*; do
  [ -s "$f" ] || continue
  echo "## ${f##*/errors-}"
  cat "$f"
done
echo "(runs not listed had no Error/Warning/Panic/Fatal lines)"
