#!/usr/bin/env bash
# IMAP SEARCH benchmark: postamt (full-text index) side by side with Debian's
# Dovecot 2.3 (maildir, no FTS plugin), on this machine, loopback only. See
# bench/README.md, section "IMAP SEARCH with the full-text index (issue 16)".
#
# usage: bench/search_vs_dovecot.sh   (as root: Dovecot's master starts as root;
#                                      installs dovecot-imapd if missing)
# It does not build anything: it uses the prebuilt postamt from BIN_DIR
# (`cargo build --release --bins -p postamt` makes it).
#
# env:   BIN_DIR=...      where `postamt` is; default target/release
#        N_SMALL=10000    messages in the small mailbox (s10k@bench.test)
#        N_BIG=100000     messages in the big mailbox (s100k@bench.test)
#        SIZE=4096        ~bytes per message
#        BATCH=500        messages per MULTIAPPEND command
#        ROUNDS=5         measured sessions per query (after one warm-up)
#        FILL_TIMEOUT=1800  seconds at most for filling one mailbox
#        INDEX_TIMEOUT=1800 seconds at most for postamt's indexer to catch up
#        KEEP=1           keep the temp dir (configs, logs, stores)
#        BENCH_REV=..     label for the source revision in the summary
#
# The messages (bench/py/search_bench.py gen) are made once and appended in
# the same order to both servers over IMAP (MULTIAPPEND), so both give them
# the same UIDs; the UIDs each server answers are compared with the truth
# computed from the bytes, and with each other. postamt runs first (fill,
# wait for its indexer, measure, stop), then Dovecot (fill, measure, stop):
# never both at once. Everything lives in a fresh temp dir; the servers it
# starts are stopped on exit, also on failure (trap). The system-wide Dovecot
# service is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BIN_DIR=${BIN_DIR:-$ROOT/target/release}
N_SMALL=${N_SMALL:-10000}
N_BIG=${N_BIG:-100000}
SIZE=${SIZE:-4096}
BATCH=${BATCH:-500}
ROUNDS=${ROUNDS:-5}
FILL_TIMEOUT=${FILL_TIMEOUT:-1800}
INDEX_TIMEOUT=${INDEX_TIMEOUT:-1800}
PASS=benchpw
USER_S=s10k@bench.test
USER_B=s100k@bench.test
MAIL_UID=nobody
MAIL_GID=nogroup

. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot must start as root)"
need_dovecot imap:dovecot-imapd
POSTAMT=$BIN_DIR/postamt
[ -x "$POSTAMT" ] || die "missing $POSTAMT (cargo build --release --bins -p postamt, or set BIN_DIR)"

dovecot_bench_setup searchbench
cp "$ROOT/bench/py/search_bench.py" "$T/"
SB="python3 $T/search_bench.py"
mkdir -p "$T/msgs" "$T/uids/postamt" "$T/uids/dovecot" "$T/postamt/data" "$T/dovecot/home" "$T/dovecot/run"

REV=${BENCH_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')}
BIN_ID="$POSTAMT ($(date -u -r "$POSTAMT" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$POSTAMT" | cut -c1-12))"
log "postamt binary: $BIN_ID"

secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}'; }
fld() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# ------------------------------------------------------------ messages ----
log "generating $N_SMALL + $N_BIG messages of ~$SIZE B"
t0=$(date +%s.%N)
timeout 600 $SB gen "$T/msgs" "$N_SMALL" "$N_BIG" "$SIZE"
echo "generated in $(secs "$t0") s"
box_file() { echo "$T/msgs/$1.msgs"; }
box_user() { [ "$1" = small ] && echo "$USER_S" || echo "$USER_B"; }

# fill_both PORT: the small mailbox, then the big one; the fill lines.
fill_both() {
  timeout "$FILL_TIMEOUT" $SB fill "$1" "$USER_S" "$PASS" "$(box_file small)" "$BATCH"
  timeout "$FILL_TIMEOUT" $SB fill "$1" "$USER_B" "$PASS" "$(box_file big)" "$BATCH"
}

# measure PORT WHO: every query of search_bench.py, warm-up + ROUNDS sessions.
measure() {
  local name box query
  while IFS=$'\t' read -r name box query; do
    log "$2: $query on $box ($(box_user "$box"))"
    timeout 1800 $SB search "$1" "$(box_user "$box")" "$PASS" "$ROUNDS" "$T/uids/$2" "$name" "$box" "$query" </dev/null
  done < <($SB queries)
}

# -------------------------------------------------------------- postamt ----
P_IMAP=$(free_port)
cat >"$T/postamt/postamt.toml" <<EOF
hostname = "bench.test"
domains = ["bench.test"]
data_dir = "$T/postamt/data"

[listen]
imap = "127.0.0.1:$P_IMAP"

[verify]
spf = "off"
dkim = false
dmarc = "off"
EOF
for u in "$USER_S" "$USER_B"; do
  echo "$PASS" | "$POSTAMT" user add "$u" --password-stdin --config "$T/postamt/postamt.toml" >/dev/null
done
log "starting postamt (IMAP 127.0.0.1:$P_IMAP)"
"$POSTAMT" serve --config "$T/postamt/postamt.toml" >"$T/postamt/stdout" 2>"$T/postamt/stderr" &
POSTAMT_PID=$!
wait_ready "$POSTAMT_PID" "$T/postamt"

log "postamt: filling by MULTIAPPEND ($BATCH per command)"
CPU0=$(awk '{print $14 + $15}' "/proc/$POSTAMT_PID/stat")
P_FILL=$(fill_both "$P_IMAP"); echo "$P_FILL" | sed 's/^/postamt /'
CPU1=$(awk '{print $14 + $15}' "/proc/$POSTAMT_PID/stat")
echo "postamt CPU during the fills: $(awk -v a="$CPU0" -v b="$CPU1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b-a)/hz}') s"
T_LAST=$(grep "user=$USER_B" <<<"$P_FILL" | fld t_last)
log "postamt: waiting for the indexer (blobs.indexed = 0 rows)"
P_IDX=$(timeout $((INDEX_TIMEOUT + 60)) $SB wait_index "$T/postamt/data/postamt.db" "$T_LAST" "$POSTAMT_PID" "$INDEX_TIMEOUT")
echo "postamt $P_IDX"
echo "postamt store on disk: $(du -sh "$T/postamt/data" | cut -f1) (index files: $(du -ch "$T"/postamt/data/postamt.db.search.db* | tail -1 | cut -f1))"
P_RSS0=$(rss_kb "$POSTAMT_PID")
P_SEARCH=$(measure "$P_IMAP" postamt); echo "$P_SEARCH" | sed 's/^/postamt /'
echo "postamt RSS: $(mb "$P_RSS0") MB before the searches, $(mb "$(rss_kb "$POSTAMT_PID")") MB after"
stop_pid "$POSTAMT_PID" 200
wait "$POSTAMT_PID" 2>/dev/null || true
POSTAMT_PID=""

# -------------------------------------------------------------- Dovecot ----
D_IMAP=$(free_port)
for u in "$USER_S" "$USER_B"; do echo "$u:{PLAIN}$PASS"; mkdir -p "$T/dovecot/home/${u%@*}"; done >"$T/dovecot/passwd"
chown -R "$MAIL_UID:$MAIL_GID" "$T/dovecot/home"
{
  dovecot_conf searchbench imap "$T/dovecot/home/%n"
  dovecot_listener imap-login imap "$D_IMAP"
} >"$DOVECOT_CONF"
start_dovecot "$D_IMAP"
log "Dovecot: filling by MULTIAPPEND ($BATCH per command)"
D_FILL=$(fill_both "$D_IMAP"); echo "$D_FILL" | sed 's/^/Dovecot /'
echo "Dovecot store on disk: $(du -sh "$T/dovecot/home" | cut -f1)"
D_SEARCH=$(measure "$D_IMAP" dovecot); echo "$D_SEARCH" | sed 's/^/Dovecot /'
stop_dovecot_instance "$DOVECOT_CONF" "$T/dovecot/run/master.pid"
DOVECOT_STARTED=""

# ----------------------------------------------------------------- logs ----
echo
P_ERR=$(grep -E 'WARN|ERROR|panic' "$T/postamt/stderr" | sed 's/\x1b\[[0-9;]*m//g' || true)
if [ -n "$P_ERR" ]; then
  echo "postamt log: $(wc -l <<<"$P_ERR") WARN/ERROR/panic lines, first 10:"; head -10 <<<"$P_ERR"
else
  echo "postamt log: no WARN/ERROR/panic lines ($(wc -l <"$T/postamt/stderr") lines)"
fi
D_ERR=$(grep -iE 'error|fatal|panic|warning' "$T/dovecot/dovecot.log" || true)
if [ -n "$D_ERR" ]; then
  echo "Dovecot log: $(wc -l <<<"$D_ERR") error/warning lines, first 10:"; head -10 <<<"$D_ERR"
else
  echo "Dovecot log: no error/warning lines"
fi

# --------------------------------------------------------- answers check ----
echo "--- answers (UIDs) against the truth computed from the messages, and between the servers"
python3 - "$T/msgs/truth.json" "$T/uids/postamt" "$T/uids/dovecot" <<'PY'
import json, os, sys
truth = json.load(open(sys.argv[1]))
bad = 0
for name, want in truth.items():
    got = {}
    for who, d in (("postamt", sys.argv[2]), ("Dovecot", sys.argv[3])):
        p = os.path.join(d, name + ".uids")
        got[who] = [int(x) for x in open(p).read().split()] if os.path.exists(p) else None
    notes = []
    for who, g in got.items():
        if g is None:
            notes.append(f"{who}: no answer")
        elif sorted(g) != want:
            s, w = set(g), set(want)
            notes.append(f"{who}: {len(g)} UIDs, {len(s - w)} not expected, {len(w - s)} missing")
    if got["postamt"] is not None and got["Dovecot"] is not None and sorted(got["postamt"]) != sorted(got["Dovecot"]):
        notes.append("postamt and Dovecot differ")
    bad += bool(notes)
    print(f"answers {name}: expected {len(want)} UIDs -> " + ("; ".join(notes) if notes else "both servers exactly these"))
print(f"answers: {'all identical' if not bad else f'{bad} queries differ'}")
PY

# -------------------------------------------------------------- summary ----
q() { grep "^search $2 " <<<"$1" | fld "$3"; }
cat <<EOF

================================ summary ================================
machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
Dovecot: $DOVECOT_VERSION (maildir, no FTS plugin)    date: $(date -u '+%Y-%m-%d %H:%M UTC')    postamt: $REV
binary: $BIN_ID
mailboxes: $N_SMALL and $N_BIG messages of ~$SIZE B; $ROUNDS measured sessions per query after one warm-up session
fill (MULTIAPPEND $BATCH/command): postamt $(grep "user=$USER_S" <<<"$P_FILL" | fld seconds) s + $(grep "user=$USER_B" <<<"$P_FILL" | fld seconds) s, Dovecot $(grep "user=$USER_S" <<<"$D_FILL" | fld seconds) s + $(grep "user=$USER_B" <<<"$D_FILL" | fld seconds) s ($N_SMALL + $N_BIG messages)
postamt index caught up $(fld caught_up_s <<<" $P_IDX") s after the last APPEND's OK ($(fld postamt_cpu_s_meanwhile <<<" $P_IDX") s of postamt CPU meanwhile)

| query (ms from sending to tagged OK) | mailbox | hits | postamt median (min-max) | Dovecot median (min-max) | Dovecot/postamt |
|---|---:|---:|---:|---:|---:|
EOF
while IFS=$'\t' read -r name box query; do
  n=$([ "$box" = small ] && echo "$N_SMALL" || echo "$N_BIG")
  pm=$(q "$P_SEARCH" "$name" median_ms); dm=$(q "$D_SEARCH" "$name" median_ms)
  echo "| \`$query\` | $n | $(q "$P_SEARCH" "$name" hits) | $pm ($(q "$P_SEARCH" "$name" min_ms)-$(q "$P_SEARCH" "$name" max_ms)) | $dm ($(q "$D_SEARCH" "$name" min_ms)-$(q "$D_SEARCH" "$name" max_ms)) | $(ratio "$dm" "$pm") |"
done < <($SB queries)
PSS=$(q "$P_SEARCH" small_subject_needle median_ms); DSS=$(q "$D_SEARCH" small_subject_needle median_ms)
cat <<EOF

warm-up session (first run of each query), ms:
  postamt: $(grep '^search ' <<<"$P_SEARCH" | awk '{for (i=1;i<=NF;i++) if ($i ~ /^warmup_ms=/) {split($i,a,"="); printf "%s=%s ", $2, a[2]}}')
  Dovecot: $(grep '^search ' <<<"$D_SEARCH" | awk '{for (i=1;i<=NF;i++) if ($i ~ /^warmup_ms=/) {split($i,a,"="); printf "%s=%s ", $2, a[2]}}')

targets:
  SEARCH SUBJECT on $N_SMALL >= 5x faster than Dovecot: $(ratio "$DSS" "$PSS")x -> $(yes_no "$DSS >= 5 * $PSS")
EOF
for name in big_body_zyxwvneedle big_body_raregem big_body_commonword big_text_zyxwvneedle; do
  v=$(q "$P_SEARCH" "$name" median_ms)
  echo "  $name on $N_BIG < 50 ms: $v ms (max $(q "$P_SEARCH" "$name" max_ms)) -> $(yes_no "$v < 50")"
done
