# Helpers the benchmark scripts share; sourced, not run.

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT
wait_port() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + limit
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

# stop_pid PID [TENTHS]: SIGTERM, then up to TENTHS/10 s (default 15 s) for
# it to go, then SIGKILL.
stop_pid() {
  local pid=$1 tenths=${2:-150}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  return 0
}

# stop_dovecot CONF MASTER_PID_FILE: doveadm stop, then the master as above.
stop_dovecot_instance() {
  local mp
  mp=$(cat "$2" 2>/dev/null) || true
  doveadm -c "$1" stop >/dev/null 2>&1 || true
  if [ -n "$mp" ]; then
    for _ in $(seq 1 100); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$mp" 2>/dev/null && kill -KILL "$mp"
  fi
  return 0
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_detail() { awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf "%s %s kB  ", $1, $2}' "/proc/$1/status"; echo; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a+0 == 0 || b+0 == 0) print "n/a"; else printf "%.2f", a/b}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
yes_no() { awk "BEGIN {print ($1) ? \"met\" : \"NOT met\"}"; }

# wait_ready PID DIR: until the postamt started as PID (its output in
# DIR/stdout and DIR/stderr) says it is ready; 30 s at most.
wait_ready() {
  for _ in $(seq 1 300); do
    grep -q 'postamt: ready' "$2/stdout" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { cat "$2/stderr" >&2; die "postamt exited"; }
    sleep 0.1
  done
  die "postamt not ready after 30 s"
}

# The EXIT trap of the benchmarks against Dovecot: stops postamt
# ($POSTAMT_PID) and the private Dovecot (once $DOVECOT_STARTED), and removes
# the temp dir $T unless KEEP=1.
dovecot_bench_cleanup() {
  local rc=$?
  set +e
  stop_pid "$POSTAMT_PID" 150
  [ -n "$DOVECOT_STARTED" ] && stop_dovecot_instance "$DOVECOT_CONF" "$T/dovecot/run/master.pid"
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept $T" >&2
  else
    rm -rf "$T"
  fi
  exit $rc
}
