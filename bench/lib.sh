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

# need_dovecot PROG:PACKAGE …: installs the Debian packages whose
# /usr/lib/dovecot/PROG is missing (and python3, which every bench needs).
need_dovecot() {
  local missing=() pair
  for pair in "$@"; do
    if ! command -v dovecot >/dev/null || [ ! -x "/usr/lib/dovecot/${pair%%:*}" ]; then
      missing+=("${pair#*:}")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v python3 >/dev/null || die "python3 is needed"
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

# dovecot_conf NAME PROTOCOLS HOME: the part of a private Dovecot's config
# every bench shares, on stdout: Dovecot's defaults wherever a bench does
# not need otherwise (no tuning), loopback only, no TLS, PLAIN logins from
# $T/dovecot/passwd, Maildirs under HOME (e.g. $T/dovecot/home/%n) owned
# by $MAIL_UID:$MAIL_GID. Sets DOVECOT_VERSION.
dovecot_conf() {
  local plaintext
  DOVECOT_VERSION=$(dovecot --version)
  case "$DOVECOT_VERSION" in
    2.3.*|2.2.*) plaintext="disable_plaintext_auth = no" ;;
    *)           plaintext="auth_allow_cleartext = yes" ;;
  esac
  cat <<CONF
instance_name = $1
base_dir = $T/dovecot/run
log_path = $T/dovecot/dovecot.log
protocols = $2
listen = 127.0.0.1
ssl = no
$plaintext
auth_mechanisms = plain
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN $T/dovecot/passwd
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$3
}
CONF
}

# dovecot_listener SERVICE NAME PORT: a plaintext listener on 127.0.0.1:PORT
# (for a *-login service, its TLS twin is turned off: NAMEs, port 0).
dovecot_listener() {
  printf 'service %s {\n  inet_listener %s {\n    address = 127.0.0.1\n    port = %s\n  }\n' "$1" "$2" "$3"
  case "$1" in
    *-login) printf '  inet_listener %ss {\n    port = 0\n  }\n' "$2" ;;
  esac
  printf '}\n'
}

# start_dovecot PORT...: starts the private Dovecot of $DOVECOT_CONF and
# waits until each PORT accepts.
start_dovecot() {
  local p
  doveconf -c "$DOVECOT_CONF" -n >/dev/null || die "Dovecot rejects its config"
  log "starting Dovecot $DOVECOT_VERSION (127.0.0.1, ports $*)"
  DOVECOT_STARTED=1
  dovecot -c "$DOVECOT_CONF" || { cat "$T/dovecot/dovecot.log" >&2 2>/dev/null; die "dovecot did not start"; }
  for p in "$@"; do
    wait_port "$p" 30 || { cat "$T/dovecot/dovecot.log" >&2; die "Dovecot not listening on $p after 30 s"; }
  done
}

# dovecot_bench_setup NAME: the temp dir $T (/tmp/NAME.XXXXXX, traversable
# by Dovecot's mail user) and the state dovecot_bench_cleanup reads, which
# becomes the EXIT trap (INT and TERM exit 130 through it).
dovecot_bench_setup() {
  T=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$T"
  POSTAMT_PID=""
  DOVECOT_CONF="$T/dovecot/dovecot.conf"
  DOVECOT_STARTED=""
  trap dovecot_bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
