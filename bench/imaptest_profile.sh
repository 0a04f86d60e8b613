#!/usr/bin/env bash
# Where the time of imaptest's long-session mix goes, and how postamt's
# writes batch (issue 16 item 6): ONE run of Dovecot's imaptest random mix
# in long sessions (logout=0, the "long" cell of bench/imaptest_mix.sh)
# against a fresh postamt playground, with postamt watched by perf.
#
# usage: IMAPTEST=/path/to/imaptest bench/imaptest_profile.sh > results.txt
#        (as root: perf attaches to postamt and adds uprobes; the script runs
#        itself in a private network namespace, `unshare --net`, with only
#        loopback up)
#
# It builds nothing: imaptest must already be built (see imaptest_mix.sh),
# postamt too (`cargo build --release -p postamt`, with its debug info: the
# writer probes below need it). imaptest's libraries are found through
# LD_LIBRARY_PATH=/usr/lib/dovecot. Needs perf (linux-perf).
#
# env:   IMAPTEST=...   the imaptest binary (required)
#        POSTAMT=...    postamt binary; default target/release/postamt
#        CLIENTS=20     imaptest clients
#        SECS=30        seconds of imaptest
#        PROBES=1       count the writer's batches and jobs with two uprobes
#                       (0: skip): jobs on the line after `job(Ok(&conn))` in
#                       crates/store/src/sqlite/writer.rs (looked up in this
#                       checkout's source: only right if POSTAMT was built
#                       from it), batches on Signals::changed (called once a
#                       batch by the writer, its only caller)
#        KEEP=1         keep the temp dir (perf data, imaptest output)
#
# Watching costs: perf alone (PROBES=0) took the mix from about 9000 to 6500
# commands/s on the 2-CPU machine of 2026-12-05 (postamt switches threads
# ~40000 times a second; presumably perf's per-thread events make each
# switch dearer), the uprobes too (~15000 hits/s) to 5200-5800; with them
# about 12 % of postamt's samples land on their trap's return
# (irqentry_exit_to_user_mode): take the CPU breakdown from a PROBES=0 run.
#
# What it prints, all for the imaptest run only (perf attaches after the
# playground is ready and stops when imaptest ends):
#   - imaptest's output and Totals; commands/s = sum of the Totals / SECS;
#     write commands = Stor + Dele (STORE +FLAGS \Deleted) + Expu + Appe
#     (+ Copy, which the default mix has only with copybox=)
#   - fdatasync and fsync calls of postamt (all threads), from perf stat on
#     the syscall tracepoints, and syncs per write command; the same calls
#     by thread and file (fd mapped to a path by sampling /proc/PID/fd)
#   - the writer's batching, estimated from the syncs: commits ~ syncs of
#     the store's WAL minus syncs of its database file (checkpoints); jobs
#     per commit ~ write commands / commits (an estimate: not every write
#     command is one job, and other commands and the search indexer write
#     too); with PROBES=1 also the counted batches and jobs
#   - postamt's CPU: total CPU seconds (/proc/PID/stat) and wall time, CPU
#     seconds by thread name (/proc/PID/task), and perf record -F 999 -g:
#     the top symbols (perf report --no-children --sort dso,sym) and a coarse
#     breakdown: SQLite (the bundled sqlite3.c: every symbol in the address
#     range of the sqlite3*/fts5* symbols), kernel, tokio/runtime,
#     postamt_imap, postamt_store, other postamt crates, rusqlite,
#     libc/malloc, std/core/alloc, other; and the kernel's share by what
#     entered it (syscall name from the call chain, page faults, ...)
# Every wait is bounded; postamt, perf and the probes are removed on exit
# (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

: "${IMAPTEST:?set IMAPTEST to a built imaptest binary}"
POSTAMT=${POSTAMT:-$ROOT/target/release/postamt}
CLIENTS=${CLIENTS:-20}
SECS=${SECS:-30}
PROBES=${PROBES:-1}
POSTAMT_PORT=2143 # the playground's IMAP port
ARGS_LONG="logout=0"
PGROUP=imtprof # uprobe group

. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (perf attaches to postamt)"
[ -x "$IMAPTEST" ] || die "IMAPTEST=$IMAPTEST is not executable"
[ -x "$POSTAMT" ] || die "missing $POSTAMT"
command -v perf >/dev/null || die "perf is not installed (apt-get install linux-perf)"

if [ -z "${IMAPTEST_PROFILE_NETNS:-}" ]; then
  exec env IMAPTEST_PROFILE_NETNS=1 unshare --net bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
export LD_LIBRARY_PATH=/usr/lib/dovecot${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

T=$(mktemp -d /tmp/imaptest-profile.XXXXXX)
POSTAMT_PID=""
MON_PIDS=()
SAMPLER=""
PROBED=""
cleanup() {
  local rc=$?
  set +e
  for p in "${MON_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${MON_PIDS[@]}"; do stop_pid "$p" 100; done
  stop_pid "$SAMPLER" 10
  stop_pid "$POSTAMT_PID" 150
  [ -n "$PROBED" ] && perf probe -q -d "$PGROUP:*" >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The mailbox imaptest APPENDs from (200 small text messages).
python3 "$ROOT/bench/py/imaptest_mbox.py" "$T/test.mbox"

# CPU ticks of a process or thread: utime + stime (fields 14, 15; the comm
# in parentheses may contain spaces).
ticks() { sed 's/.*) //' "$1" | awk '{print $12 + $13}'; }
thread_ticks() { # PID: "tid ticks comm" per thread
  local s
  for s in /proc/"$1"/task/*/stat; do
    [ -r "$s" ] || continue
    printf '%s %s %s\n' "$(basename "$(dirname "$s")")" "$(ticks "$s" 2>/dev/null || echo 0)" "$(tr ' ' '_' <"$(dirname "$s")/comm" 2>/dev/null)"
  done
}
HZ=$(getconf CLK_TCK)
cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # ticks, all CPUs

echo "# imaptest long-session mix, postamt profiled"
echo "date (UTC):      $(date -u '+%Y-%m-%d %H:%M:%S')"
echo "postamt:         $POSTAMT ($("$POSTAMT" --version), mtime $(date -u -r "$POSTAMT" '+%Y-%m-%d %H:%M:%S') UTC)"
echo "source HEAD:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed/untracked paths)"
echo "imaptest:        $IMAPTEST"
echo "machine:         $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r), $(perf --version)"
echo "load before:     $(cut -d' ' -f1-3 /proc/loadavg)"
echo "imaptest args:   host=127.0.0.1 port=$POSTAMT_PORT user=alice@postamt.test pass=alice mbox=... clients=$CLIENTS secs=$SECS $ARGS_LONG"
echo

# ------------------------------------------------------------ postamt ----
D=$T/postamt
mkdir -p "$D"
timeout $((SECS + 600)) "$POSTAMT" serve --dev --data-dir "$D/data" >"$D/stdout" 2>"$D/stderr" &
POSTAMT_PID=$!
wait_ready "$POSTAMT_PID" "$D"
wait_port "$POSTAMT_PORT" 30 || die "postamt IMAP not listening"
# the server itself: the child of timeout
PID=$(pgrep -P "$POSTAMT_PID" -x postamt || true)
[ -n "$PID" ] || PID=$POSTAMT_PID
[ "$(cat /proc/"$PID"/comm)" = postamt ] || die "cannot find the postamt process"

# ------------------------------------------------------------- probes ----
EVENTS="syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync"
PROBE_EVENTS=()
if [ "$PROBES" = 1 ]; then
  PROBED=1
  W=crates/store/src/sqlite/writer.rs
  LJOB=$(grep -n 'let end = if c.ok' "$ROOT/$W" | head -1 | cut -d: -f1)
  if [ -n "$LJOB" ] && timeout 600 perf probe -q -x "$POSTAMT" --source="$ROOT" -a "$PGROUP:wjob=$W:$LJOB" >"$T/probe.log" 2>&1; then
    PROBE_EVENTS+=(wjob)
    echo "probe wjob:      $W:$LJOB (after each job ran), $(perf probe -l 2>/dev/null | grep -c "$PGROUP:wjob ") address(es)"
  else
    echo "probe wjob:      not added ($(tail -1 "$T/probe.log" 2>/dev/null)); batching estimated from the syncs"
  fi
  # Function entries, by the file offset of the symbol (perf probe takes a
  # raw address as one): wbatch = Signals::changed, which the writer calls
  # once a batch (its only caller); s_* = the store's write methods the
  # IMAP commands of the mix call (STORE, EXPUNGE, APPEND, the \Recent
  # claim of a session that sees new messages, COPY) and the search
  # indexer's, each runs at most one writer job.
  nm -C --defined-only "$POSTAMT" >"$T/nm_c" 2>/dev/null || true
  read -r OFF VA < <(readelf -lW "$POSTAMT" | awk '$1 == "LOAD" && / R E / {print $2, $3}')
  for ev in "wbatch|coordination::Signals::changed" "s_store_flags|SqliteStore>::store_flags" \
            "s_expunge|SqliteStore>::expunge" "s_deliver_many|SqliteStore>::deliver_many" \
            "s_claim_recent|SqliteStore>::claim_recent" \
            "s_copy_messages|SqliteStore>::copy_messages" "s_index_batch|SqliteStore>::index_batch"; do
    a=$(awk -v s="${ev#*|}" 'substr($0, length($0) - length(s) + 1) == s && !n++ {print $1}' "$T/nm_c")
    if [ -n "$a" ] && timeout 120 perf probe -q -x "$POSTAMT" -a "$PGROUP:${ev%%|*}=$(printf '0x%x' $((16#$a - VA + OFF)))" >>"$T/probe.log" 2>&1; then
      PROBE_EVENTS+=("${ev%%|*}")
    else
      echo "probe ${ev%%|*}: not added (${ev#*|} not found or refused)"
    fi
  done
  echo "probes:          ${PROBE_EVENTS[*]:-none}"
fi
for ev in "${PROBE_EVENTS[@]}"; do EVENTS="$EVENTS,$PGROUP:$ev"; done

# ---------------------------------------------------------- monitors -----
BOUND=$((SECS + 150))
timeout -s INT $BOUND perf stat -x, -e "$EVENTS,context-switches" -p "$PID" -o "$T/stat.csv" >/dev/null 2>&1 &
MON_PIDS+=($!)
timeout -s INT $BOUND perf record -q -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync \
  -p "$PID" -o "$T/sync.data" >/dev/null 2>"$T/sync.err" &
MON_PIDS+=($!)
timeout -s INT $BOUND perf record -q -e cpu-clock -F 999 -g -p "$PID" -o "$T/cpu.data" >/dev/null 2>"$T/cpu.err" &
MON_PIDS+=($!)
# fd -> file, sampled every 0.2 s
(
  end=$((SECONDS + BOUND))
  while [ $SECONDS -lt $end ] && [ -d /proc/"$PID"/fd ]; do
    find /proc/"$PID"/fd -mindepth 1 -maxdepth 1 -printf '%f %l\n' 2>/dev/null | sort -u >>"$T/fdraw"
    sleep 0.2
  done
) &
SAMPLER=$!
sleep 2 # perf attached

thread_ticks "$PID" >"$T/threads0"
C0=$(ticks /proc/"$PID"/stat)
B0=$(cpu_busy)
W0=$(date +%s.%N)
rc=0
{ TIMEFORMAT='%U %S %R'; time (cd "$T" && timeout $((SECS + 90)) "$IMAPTEST" host=127.0.0.1 port=$POSTAMT_PORT \
  user=alice@postamt.test pass=alice mbox="$T/test.mbox" clients="$CLIENTS" secs="$SECS" $ARGS_LONG >"$T/out.txt" 2>&1); } 2>"$T/time" || rc=$?
W1=$(date +%s.%N)
C1=$(ticks /proc/"$PID"/stat)
B1=$(cpu_busy)
thread_ticks "$PID" >"$T/threads1"
for p in "${MON_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${MON_PIDS[@]}"; do
  for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$p" 50
  wait "$p" 2>/dev/null || true
done
MON_PIDS=()
stop_pid "$SAMPLER" 10
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""
awk '!seen[$0]++' "$T/fdraw" >"$T/fdmap" 2>/dev/null || : >"$T/fdmap"
echo "load after:      $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ------------------------------------------------------------ imaptest ---
echo "## imaptest output"
awk '/^(Error|Panic|Fatal|Warning)/ {k = $0; gsub(/[0-9]+/, "N", k)
       if (++n[k] > 5) {el[k]++; next}}
     {print}
     END {for (k in el) printf "[%d more lines like: %s]\n", el[k], substr(k, 1, 160)}' "$T/out.txt"
echo "imaptest exit: $rc; imaptest CPU user/sys/wall s: $(cat "$T/time")"
echo
# Totals: the header line after "Totals:", then the first line of only
# integers with as many fields -> "Kind count" lines
awk '/^Totals:/ {t = 1; next}
     t == 1 {nh = split($0, h); t = 2; next}
     t == 2 && NF == nh && $0 ~ /^[ 0-9]+$/ {for (i = 1; i <= NF; i++) print h[i], $i; t = 3}' \
  "$T/out.txt" >"$T/totals"
[ -s "$T/totals" ] || die "no Totals in imaptest's output"
tot() { awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print 0}' "$T/totals"; }
CMDS=$(awk '{s += $2} END {print s}' "$T/totals")
STOR=$(tot Stor); DELE=$(tot Dele); EXPU=$(tot Expu); APPE=$(tot Appe); COPY=$(tot Copy)
WRITES=$((STOR + DELE + EXPU + APPE + COPY))

# -------------------------------------------------------------- syncs ----
stat_count() { awk -F, -v e="$1" '$3 == e {print ($1 ~ /^[0-9]+$/) ? $1 : 0; f = 1} END {if (!f) print 0}' "$T/stat.csv"; }
FDATASYNC=$(stat_count syscalls:sys_enter_fdatasync)
FSYNC=$(stat_count syscalls:sys_enter_fsync)
SYNCS=$((FDATASYNC + FSYNC))

# by thread and file: fd -> path from the sampled map (an fd seen with
# more than one path is reported as such)
perf script -i "$T/sync.data" -F comm,event,trace 2>/dev/null >"$T/sync.txt" || true
awk -v data="$D/data/" '
  function hex(h,   i, v) {v = 0; for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v}
  FNR == NR { p = $2; sub("^" data, "", p); gsub(/[0-9a-f]{8,}|[0-9]{3,}/, "N", p)
              if (!($1 in path)) path[$1] = p; else if (path[$1] != p) path[$1] = "(fd " $1 " reused: " path[$1] " | " p ")"
              next }
  { ev = ($0 ~ /sys_enter_fdatasync/) ? "fdatasync" : "fsync"
    fd = ""; if (match($0, /fd: 0x[0-9a-f]+/)) fd = hex(substr($0, RSTART + 6, RLENGTH - 6))
    f = (fd in path) ? path[fd] : "(fd " fd ", not seen)"
    n[$1 "\t" ev "\t" f]++ }
  END { for (k in n) print n[k] "\t" k }' "$T/fdmap" "$T/sync.txt" | sort -t$'\t' -k1,1nr >"$T/sync_by"

# SQLite syncs with fsync or fdatasync, depending on how it was compiled
WAL_SYNCS=$(awk -F'\t' '$4 ~ /-wal$/ && $4 !~ /search/ {s += $1} END {print s + 0}' "$T/sync_by")
DB_SYNCS=$(awk -F'\t' '$4 ~ /\.(db|sqlite3?)$/ && $4 !~ /search/ {s += $1} END {print s + 0}' "$T/sync_by")

echo "## Summary"
printf 'commands:           %d in %s s = %.0f cmd/s (sum of Totals / SECS)\n' "$CMDS" "$SECS" "$(awk -v c="$CMDS" -v s="$SECS" 'BEGIN {print c / s}')"
echo "commands by kind:   $(awk '{printf "%s %s  ", $1, $2}' "$T/totals")"
echo "write commands:     $WRITES = STORE $STOR + STORE \\Deleted (Dele) $DELE + EXPUNGE $EXPU + APPEND $APPE + COPY $COPY"
echo "fdatasync calls:    $FDATASYNC"
echo "fsync calls:        $FSYNC"
echo "syncs per write:    $(awk -v s="$SYNCS" -v w="$WRITES" 'BEGIN {if (w) printf "%.3f", s / w; else print "n/a"}') ((fdatasync + fsync) / write commands)"
echo "syncs per command:  $(awk -v s="$SYNCS" -v w="$CMDS" 'BEGIN {if (w) printf "%.3f", s / w; else print "n/a"}')"
echo "context switches:   $(stat_count context-switches) (postamt's threads)"
echo
echo "## fdatasync/fsync by thread and file (perf record of the tracepoints; N = digits)"
printf '%8s  %-18s %-10s %s\n' calls thread syscall file
awk -F'\t' '{printf "%8d  %-18s %-10s %s\n", $1, $2, $3, $4}' "$T/sync_by"
echo

echo "## The writer's batching"
COMMITS_EST=$((WAL_SYNCS - DB_SYNCS))
echo "syncs of the store's WAL $WAL_SYNCS, of its database file $DB_SYNCS (one a checkpoint, which syncs the WAL once too)"
echo "commits (estimate) = WAL syncs - checkpoints: $COMMITS_EST (at most; a WAL restart syncs its header once more)"
echo "jobs per commit (estimate) = write commands / commits: $(awk -v w="$WRITES" -v c="$COMMITS_EST" 'BEGIN {if (c > 0) printf "%.2f", w / c; else print "n/a"}')"
if [[ " ${PROBE_EVENTS[*]} " == *" wjob "* && " ${PROBE_EVENTS[*]} " == *" wbatch "* ]]; then
  JOBS=$(stat_count "$PGROUP:wjob"); BATCHES=$(stat_count "$PGROUP:wbatch")
  echo "counted (uprobes):  batches $BATCHES, jobs $JOBS: jobs per batch $(awk -v j="$JOBS" -v b="$BATCHES" 'BEGIN {if (b) printf "%.2f", j / b; else print "n/a"}')"
  echo "                    WAL syncs per batch $(awk -v s="$WAL_SYNCS" -v b="$BATCHES" 'BEGIN {if (b) printf "%.2f", s / b; else print "n/a"}') (a batch that changed nothing commits without writing the WAL)"
  echo "                    jobs per commit that synced the WAL $(awk -v j="$JOBS" -v c="$COMMITS_EST" 'BEGIN {if (c > 0) printf "%.2f", j / c; else print "n/a"}')"
fi
if [ ${#PROBE_EVENTS[@]} -gt 0 ]; then
  echo "store write calls by method (uprobe on entry; each runs at most one job), per write command of imaptest:"
  for ev in "${PROBE_EVENTS[@]}"; do
    case $ev in s_*) n=$(stat_count "$PGROUP:$ev")
      printf '  %-16s %8d  %6s per write command\n' "${ev#s_}" "$n" "$(awk -v n="$n" -v w="$WRITES" 'BEGIN {if (w) printf "%.2f", n / w; else print "n/a"}')" ;;
    esac
  done
fi
echo

# ---------------------------------------------------------------- CPU ----
echo "## postamt CPU"
WALL=$(awk -v a="$W0" -v b="$W1" 'BEGIN {printf "%.2f", b - a}')
CPUS=$(awk -v a="$C0" -v b="$C1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
echo "CPU seconds $CPUS in $WALL s wall = $(awk -v c="$CPUS" -v w="$WALL" 'BEGIN {printf "%.2f", c / w}') CPUs; $(awk -v c="$CPUS" -v n="$CMDS" 'BEGIN {if (n) printf "%.0f", c * 1e6 / n; else print "n/a"}') us CPU per command"
read -r IU IS _ <"$T/time"
echo "machine busy $(awk -v b=$((B1 - B0)) -v hz="$HZ" -v w="$WALL" 'BEGIN {printf "%.2f", b / hz / w}') of $(nproc) CPUs: postamt $(awk -v c="$CPUS" -v w="$WALL" 'BEGIN {printf "%.2f", c / w}'), imaptest $(awk -v u="$IU" -v s="$IS" -v w="$WALL" 'BEGIN {printf "%.2f", (u + s) / w}'), the rest (perf, other work) $(awk -v b=$((B1 - B0)) -v hz="$HZ" -v c="$CPUS" -v u="$IU" -v s="$IS" -v w="$WALL" 'BEGIN {printf "%.2f", (b / hz - c - u - s) / w}')"
echo "by thread name (CPU s during the run; threads that exited meanwhile are missing):"
awk -v hz="$HZ" 'FNR == NR {t0[$1] = $2; next}
  {d = $2 - (($1 in t0) ? t0[$1] : 0); s[$3] += d; n[$3]++}
  END {for (c in s) if (s[c] > 0) printf "  %-20s %3d threads %8.2f s\n", c, n[c], s[c] / hz}' \
  "$T/threads0" "$T/threads1" | sort -k4,4nr
echo
echo "perf samples by thread (cpu-clock, -F 999):"
perf report -i "$T/cpu.data" --no-children --sort comm --stdio -g none 2>/dev/null \
  | awk '/^ *[0-9.]+%/ && ++n <= 10 {printf "  %s\n", $0}'
echo

# SQLite: every symbol between the first and the last sqlite3*/fts5* symbol
# (the bundled amalgamation is one object: its static functions lie there)
nm -n --defined-only "$POSTAMT" 2>/dev/null | awk '$2 ~ /^[tTwW]$/ {print $3}' \
  | awk '{a[NR] = $0} /^(sqlite3|fts5)/ {if (!lo) lo = NR; hi = NR}
         END {for (i = lo; i <= hi; i++) print a[i]}' >"$T/sqlite_syms"
perf report -i "$T/cpu.data" --no-children --sort dso,sym --stdio -g none -t $'\t' 2>/dev/null \
  | awk -F'\t' '$1 ~ /%/ {for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i); print}' OFS='\t' >"$T/by_sym"
TOTAL_SAMPLES=$(perf report -i "$T/cpu.data" --no-children --sort comm --stdio -g none -n -t $'\t' 2>/dev/null \
  | awk -F'\t' '$1 ~ /%/ {s += $2} END {print s + 0}')
echo "perf: $TOTAL_SAMPLES cpu-clock samples; share of postamt's samples:"
awk -F'\t' 'FNR == NR {sq[$0] = 1; next}
  { pct = $1 + 0; dso = $2; sym = $3; sub(/^\[[.k]\] +/, "", sym); sub(/ +$/, "", sym)
    s = sym; sub(/^[<&*]+/, "", s); sub(/^(dyn |impl )/, "", s)
    crate = s; if (!sub(/::.*/, "", crate)) crate = ""
    if (dso ~ /kernel|vmlinux/ || $3 ~ /^\[k\]/) c = "kernel"
    else if (sym in sq || sym ~ /^(sqlite3|fts5)/) c = "SQLite"
    else if (crate ~ /^(tokio|mio|tokio_util|futures_util|futures_core|parking_lot|parking_lot_core|crossbeam_[a-z]+)$/) c = "tokio/runtime"
    else if (crate == "postamt_imap") c = "postamt_imap"
    else if (crate == "postamt_store") c = "postamt_store"
    else if (crate ~ /^postamt/) c = "other postamt crates"
    else if (crate ~ /^(rusqlite|libsqlite3_sys)$/) c = "rusqlite"
    else if (dso ~ /^(libc|ld-linux|libm|libpthread|\[vdso\])/ || sym ~ /malloc|^_?_?(free|realloc|calloc|cfree)$|^_int_|^mem(cpy|move|set|cmp)/) c = "libc/malloc"
    else if (crate ~ /^(std|core|alloc|hashbrown)$/) c = "std/core/alloc"
    else c = "other"
    cat[c] += pct }
  END {for (c in cat) printf "  %6.2f%%  %s\n", cat[c], c}' "$T/sqlite_syms" "$T/by_sym" | sort -k1,1nr
echo
echo "kernel samples by entry (from the call chains: the syscall, else page fault, interrupt, ...), share of all samples:"
perf script -i "$T/cpu.data" -F comm,ip,sym,dso 2>/dev/null | awk '
  function flush() {
    if (n && kern) {
      k = "other kernel"
      for (i = 1; i <= n; i++) { f = fr[i]
        if (f ~ /__(x64|ia32)_sys_/) { k = f; sub(/.*__(x64|ia32)_sys_/, "", k); sub(/[^a-z0-9_].*/, "", k); k = "syscall " k; break }
        if (f ~ / (asm_)?exc_page_fault/) { k = "page faults"; break }
        if (f ~ / asm_(sysvec|common_interrupt)/) { k = "interrupts"; break }
        if (f ~ / irqentry_exit_to_user_mode/) { k = "return to user after an interrupt"; break }
        if (f ~ / do_syscall_64/) { k = "syscall entry/exit (no sys_ frame)"; break } }
      c[k]++ }
    if (n) tot++
    n = 0; kern = 0 }
  /^[^\t]/ { flush(); next }
  /^\t/ { fr[++n] = $0; if (n == 1) kern = ($0 ~ /kernel\.kallsyms|vmlinux/) }
  END { flush(); for (k in c) if (100 * c[k] / tot >= 0.1) printf "  %6.2f%%  %s\n", 100 * c[k] / tot, k }' | sort -k1,1nr
echo "  (cpu-clock in a VM: a kernel sample lands where interrupts are enabled again,"
echo "   e.g. finish_task_switch after a context switch; the chain still names the syscall)"
echo
echo "top symbols (perf report --no-children --sort dso,sym):"
awk -F'\t' 'NR <= 30 {sym = $3; if (length(sym) > 130) sym = substr(sym, 1, 127) "..."; printf "  %7s  %-22s %s\n", $1, substr($2, 1, 22), sym}' "$T/by_sym"
echo
echo "(postamt: stderr $(wc -l <"$D/stderr") lines; $(ls "$D/data/transcripts" 2>/dev/null | wc -l) transcript files)"
