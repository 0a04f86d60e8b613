#!/usr/bin/env bash
# POP3 benchmark: postamt side by side with Debian's Dovecot, on this machine,
# loopback only. See bench/README.md for what each figure means.
#
# usage: bench/pop3_vs_dovecot.sh            (as root: it installs dovecot-pop3d
#                                             if missing and runs its own Dovecot)
# env:   KEEP=1       keep the temp dir (configs, logs, stores) for inspection
#        ROUNDS=3     measured rounds per RETR benchmark (default 3)
#        BENCH_REV=.. label for the source revision in the summary (default:
#                     git rev-parse of this tree, +dirty if crates/ differ)
#
# Warm-up, the same for both servers: one session, a 3 s pause, two more
# sessions (see README: Dovecot's first sessions after the maildir changed
# rescan the directory, and only then does it settle in its steady state).
#
# Everything lives in a fresh temp dir; the servers it starts are stopped on
# exit, also on failure (trap). The system-wide Dovecot service is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ROUNDS=${ROUNDS:-3}
N=10000          # messages for the RETR comparison
SIZE=4096        # ~bytes per message (bench_message)
BIG_N=100000     # messages in the big maildrop (login+STAT)
BIG_SIZE=2048
IDLE_CONNS=1000  # idle POP3 connections for the per-connection RSS figure
PASS=benchpw
USER_A=user@bench.test
USER_BIG=big@bench.test
MAIL_UID=nobody  # Dovecot refuses uid 0; nobody/nogroup exists on Debian
MAIL_GID=nogroup

# Shared helpers: log, die, free_port, wait_port, stop_pid, rss_kb, ratio, …
. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot must start as root)"

# ---------------------------------------------------------------- setup ----
need_dovecot pop3:dovecot-pop3d

# 1000 idle connections + the server's own fds.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
  ulimit -n 8192 || die "cannot raise ulimit -n to 8192"
fi

dovecot_bench_setup pop3bench

# warmup ADDR USER: one session (Dovecot builds its index and, on QUIT, marks
# every message seen), a pause so the maildir's cur/ mtime is no longer
# "recent", then two more sessions (the first rescans cur/, the second runs as
# every later one will).
warmup() {
  "$EX/pop3_bench" "$1" "$2" "$PASS" 16 1 | sed 's/^/warm-up 1: /'
  sleep 3
  "$EX/pop3_bench" "$1" "$2" "$PASS" 16 2 | sed 's/^/warm-up 2: /'
}

# The Python helpers (bench/py/): the messages, a Maildir filler, idle
# connections; the scripts below import them from $T.
cp "$ROOT"/bench/py/*.py "$T/"

# verify PORT USER: STAT octets, and message 1 byte-identical to the expected
# bench message; prints "count octets".
cat >"$T/verify.py" <<'EOF'
import os, poplib, re, sys
sys.path.insert(0, os.path.dirname(__file__))
from msg import delivered
port, user, pw, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
p = poplib.POP3("127.0.0.1", port, timeout=60)
p.user(user); p.pass_(pw)
count, octets = p.stat()
for num in (1, count):
    _, lines, _ = p.retr(num)
    got = b"".join(l + b"\r\n" for l in lines)
    i = int(re.search(rb"^Subject: message (\d+)\r$", got, re.M).group(1))
    want = delivered(i, size, user)
    if got != want:
        sys.exit(f"message {num} (bench message {i}) differs from bench_message({i}, {size})")
p.quit()
print(count, octets)
EOF

# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# field extractors for pop3_bench lines
f_msgs()  { sed -n 's/.* \([0-9.]*\) msg\/s.*/\1/p'; }
f_mbs()   { sed -n 's/.* \([0-9.]*\) MB\/s.*/\1/p'; }
f_login() { sed -n 's/.*login (PASS) \([0-9.]*\) ms.*/\1/p'; }
f_stat()  { sed -n 's/.*STAT \([0-9.]*\) ms.*/\1/p'; }
# whole session: messages / (PASS + STAT + all RETRs), per round
f_sess()  { sed -n 's/.*: \([0-9]*\) messages, login (PASS) \([0-9.]*\) ms, STAT \([0-9.]*\) ms, .* \([0-9.]*\) msg\/s.*/\1 \2 \3 \4/p' \
            | awk '{printf "%.0f\n", $1 / (($2 + $3) / 1000 + $1 / $4)}'; }

# ---------------------------------------------------------------- build ----
REV=${BENCH_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')}
log "building (cargo build --release --bins --examples -p postamt)"
cargo build --release --bins --examples -p postamt >&2
BIN=$ROOT/target/release
EX=$BIN/examples
for b in "$BIN/postamt" "$EX/bench_fill" "$EX/pop3_bench" "$EX/deliver_bench"; do
  [ -x "$b" ] || die "missing $b"
done

# ------------------------------------------------------------- delivery ----
log "deliver_bench 16 20000 4096"
DELIVER_OUT=$(TMPDIR=$T "$EX/deliver_bench" 16 20000 4096)
echo "$DELIVER_OUT"
DELIVER_RATE=$(sed -n 's/.* \([0-9.]*\) messages\/s.*/\1/p' <<<"$DELIVER_OUT")

# ----------------------------------------------------------- fill stores ----
log "filling the postamt store: $N x $SIZE B for $USER_A, $BIG_N x $BIG_SIZE B for $USER_BIG"
mkdir -p "$T/postamt/data"
"$EX/bench_fill" "$T/postamt/data/postamt.db" bench.test "$USER_A" "$PASS" "$N" "$SIZE"
"$EX/bench_fill" "$T/postamt/data/postamt.db" bench.test "$USER_BIG" "$PASS" "$BIG_N" "$BIG_SIZE"

log "filling the Dovecot maildir: $N x $SIZE B for $USER_A"
mkdir -p "$T/dovecot/home/user" "$T/dovecot/run"
python3 "$T/fill_maildir.py" "$T/dovecot/home/user/Maildir" "$N" "$SIZE" "$USER_A"
chown -R "$MAIL_UID:$MAIL_GID" "$T/dovecot/home"

# -------------------------------------------------------------- postamt ----
P_PORT=$(free_port)
cat >"$T/postamt/postamt.toml" <<EOF
hostname = "bench.test"
domains = ["bench.test"]
data_dir = "$T/postamt/data"

[listen]
pop3 = "127.0.0.1:$P_PORT"

[limits]
# room for the $IDLE_CONNS idle connections, all from 127.0.0.1
max_connections = 2000
max_connections_per_ip = 2000
EOF

log "starting postamt on 127.0.0.1:$P_PORT"
"$BIN/postamt" serve --config "$T/postamt/postamt.toml" >"$T/postamt/stdout" 2>"$T/postamt/stderr" &
POSTAMT_PID=$!
wait_ready "$POSTAMT_PID" "$T/postamt"
sleep 1
P_IDLE_RSS=$(rss_kb "$POSTAMT_PID")
echo "postamt idle RSS right after start: $(rss_detail "$POSTAMT_PID")"

log "postamt: $IDLE_CONNS idle connections"
read -r C_BEFORE C_AFTER C_PER < <(python3 "$T/idle_conns.py" "$P_PORT" "$POSTAMT_PID" "$IDLE_CONNS" "+OK")
echo "postamt RSS: $C_BEFORE kB before, $C_AFTER kB with $IDLE_CONNS idle connections: $C_PER bytes per connection"

read -r P_COUNT P_OCTETS < <(python3 "$T/verify.py" "$P_PORT" "$USER_A" "$PASS" "$SIZE")
echo "postamt $USER_A: $P_COUNT messages, $P_OCTETS octets (first/last message verified)"

log "postamt RETR (warm-up, then depth 1 and 16 x $ROUNDS)"
warmup "127.0.0.1:$P_PORT" "$USER_A"
P_D1=$("$EX/pop3_bench" "127.0.0.1:$P_PORT" "$USER_A" "$PASS" 1 "$ROUNDS"); echo "$P_D1"
P_D16=$("$EX/pop3_bench" "127.0.0.1:$P_PORT" "$USER_A" "$PASS" 16 "$ROUNDS"); echo "$P_D16"
P_RSS_10K=$(rss_kb "$POSTAMT_PID")
echo "postamt RSS after the $N-message RETR rounds: $(rss_detail "$POSTAMT_PID")"

log "postamt login+STAT on the $BIG_N-message maildrop ($ROUNDS rounds, each also RETRs all at depth 16)"
P_BIG=$("$EX/pop3_bench" "127.0.0.1:$P_PORT" "$USER_BIG" "$PASS" 16 "$ROUNDS"); echo "$P_BIG"
P_AFTER_RSS=$(rss_kb "$POSTAMT_PID")
echo "postamt RSS after the $BIG_N-message rounds too: $(rss_detail "$POSTAMT_PID")"

kill -TERM "$POSTAMT_PID"
for _ in $(seq 1 100); do kill -0 "$POSTAMT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$POSTAMT_PID" 2>/dev/null && die "postamt did not stop on SIGTERM within 10 s"
POSTAMT_PID=""

# -------------------------------------------------------------- Dovecot ----
D_PORT=$(free_port)
echo "$USER_A:{PLAIN}$PASS" >"$T/dovecot/passwd"
{
  dovecot_conf pop3bench pop3 "$T/dovecot/home/user"
  dovecot_listener pop3-login pop3 "$D_PORT"
} >"$DOVECOT_CONF"
start_dovecot "$D_PORT"

read -r D_COUNT D_OCTETS < <(python3 "$T/verify.py" "$D_PORT" "$USER_A" "$PASS" "$SIZE")
echo "Dovecot $USER_A: $D_COUNT messages, $D_OCTETS octets (first/last message verified)"
[ "$D_COUNT" = "$P_COUNT" ] && [ "$D_OCTETS" = "$P_OCTETS" ] \
  || die "maildrops differ: postamt $P_COUNT/$P_OCTETS, Dovecot $D_COUNT/$D_OCTETS"

log "Dovecot RETR (warm-up, then depth 1 and 16 x $ROUNDS)"
warmup "127.0.0.1:$D_PORT" "$USER_A"
D_D1=$("$EX/pop3_bench" "127.0.0.1:$D_PORT" "$USER_A" "$PASS" 1 "$ROUNDS"); echo "$D_D1"
D_D16=$("$EX/pop3_bench" "127.0.0.1:$D_PORT" "$USER_A" "$PASS" 16 "$ROUNDS"); echo "$D_D16"

if grep -qiE 'error|fatal|panic' "$T/dovecot/dovecot.log" 2>/dev/null; then
  echo "Dovecot log has errors:"; grep -iE 'error|fatal|panic' "$T/dovecot/dovecot.log" | head -20
fi
if grep -qiE 'panic|error' "$T/postamt/stderr" 2>/dev/null; then
  echo "postamt log has errors:"; grep -iE 'panic|error' "$T/postamt/stderr" | head -20
fi

# -------------------------------------------------------------- summary ----
P1=$(f_msgs <<<"$P_D1" | median);  D1=$(f_msgs <<<"$D_D1" | median)
P16=$(f_msgs <<<"$P_D16" | median); D16=$(f_msgs <<<"$D_D16" | median)
P1MB=$(f_mbs <<<"$P_D1" | median);  D1MB=$(f_mbs <<<"$D_D1" | median)
P16MB=$(f_mbs <<<"$P_D16" | median); D16MB=$(f_mbs <<<"$D_D16" | median)
PS1=$(f_sess <<<"$P_D1" | median);  DS1=$(f_sess <<<"$D_D1" | median)
PS16=$(f_sess <<<"$P_D16" | median); DS16=$(f_sess <<<"$D_D16" | median)
PST=$(f_stat <<<"$P_D16" | median); DST=$(f_stat <<<"$D_D16" | median)
f_ls() { paste <(f_login <<<"$1") <(f_stat <<<"$1") | awk '{print $1+$2}'; }
BLS=$(f_ls "$P_BIG" | median); BMAX=$(f_ls "$P_BIG" | sort -n | tail -1)
PLS=$(f_ls "$P_D16" | median); DLS=$(f_ls "$D_D16" | median)
PL=$(f_login <<<"$P_D16" | median); DL=$(f_login <<<"$D_D16" | median)
BL=$(f_login <<<"$P_BIG" | median); BS=$(f_stat <<<"$P_BIG" | median)

cat <<EOF

================================ summary ================================
machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
Dovecot: $DOVECOT_VERSION    date: $(date -u '+%Y-%m-%d %H:%M UTC')    postamt: $REV
medians of $ROUNDS rounds after 3 warm-up sessions; $N messages, $P_OCTETS octets

| benchmark                                  | postamt         | Dovecot         | postamt/Dovecot |
|--------------------------------------------|-----------------|-----------------|-----------------|
| RETR $N msgs, depth 1 (msg/s)           | $P1 | $D1 | $(ratio "$P1" "$D1") |
| RETR $N msgs, depth 16 (msg/s)          | $P16 | $D16 | $(ratio "$P16" "$D16") |
| RETR depth 1 (MB/s)                        | $P1MB | $D1MB | |
| RETR depth 16 (MB/s)                       | $P16MB | $D16MB | |
| whole session PASS+STAT+RETR, depth 1 (msg/s)  | $PS1 | $DS1 | $(ratio "$PS1" "$DS1") |
| whole session PASS+STAT+RETR, depth 16 (msg/s) | $PS16 | $DS16 | $(ratio "$PS16" "$DS16") |
| login (PASS) on the $N maildrop (ms)    | $PL | $DL | |
| STAT on the $N maildrop (ms)            | $PST | $DST | |
| PASS+STAT on the $N maildrop (ms)       | $PLS | $DLS | |
| login (PASS) on $BIG_N maildrop (ms)    | $BL | | |
| STAT on $BIG_N maildrop (ms)            | $BS | | |
| login+STAT on $BIG_N maildrop (ms)      | $BLS (max $BMAX) | | |
| idle RSS right after start                 | $(mb "$P_IDLE_RSS") MB | | |
| RSS after the $N-msg RETR rounds        | $(mb "$P_RSS_10K") MB | | |
| RSS after the $BIG_N-msg rounds too     | $(mb "$P_AFTER_RSS") MB | | |
| RSS per idle connection ($IDLE_CONNS conns)     | $C_PER B | | |
| deliver_bench 16 20000 4096 (msg/s)        | $DELIVER_RATE | | |

targets:
  delivery >= 5,000 msg/s with 16 deliverers:        $DELIVER_RATE msg/s -> $(yes_no "$DELIVER_RATE >= 5000")
  STAT on 100k maildrop < 50 ms (STAT alone):        $BS ms -> $(yes_no "$BS < 50")
  login+STAT on 100k maildrop < 50 ms:               $BLS ms -> $(yes_no "$BLS < 50")
  RETR 10k >= 1.5x Dovecot, depth 1:                 $(ratio "$P1" "$D1")x -> $(yes_no "$P1 >= 1.5 * $D1")
  RETR 10k >= 1.5x Dovecot, depth 16:                $(ratio "$P16" "$D16")x -> $(yes_no "$P16 >= 1.5 * $D16")
  (whole session >= 1.5x Dovecot, depth 1 / 16:      $(ratio "$PS1" "$DS1")x -> $(yes_no "$PS1 >= 1.5 * $DS1") / $(ratio "$PS16" "$DS16")x -> $(yes_no "$PS16 >= 1.5 * $DS16"))
  idle server < 30 MB RSS:                           $(mb "$P_IDLE_RSS") MB -> $(yes_no "$P_IDLE_RSS < 30 * 1024")
  idle connection < 64 KB RSS:                       $C_PER B -> $(yes_no "$C_PER < 65536")
EOF
