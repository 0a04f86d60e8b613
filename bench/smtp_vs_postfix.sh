#!/usr/bin/env bash
# SMTP benchmark: end-to-end durable throughput into mailboxes, postamt side
# by side with Debian's Postfix + Dovecot (LMTP), on this machine, loopback
# only. Load generator: Postfix's smtp-source. See bench/README.md, section
# "SMTP: postamt vs Postfix + Dovecot".
#
# usage: bench/smtp_vs_postfix.sh      (as root: Postfix's master and Dovecot
#                                       start as root; installs postfix,
#                                       dovecot-lmtpd, dovecot-pop3d if missing)
# env:   KEEP=1        keep the temp dir (configs, logs, stores, maildirs)
#        SIZES="4096 102400"   smtp-source -l payload sizes (bytes)
#        SESSIONS="1 8 32"     smtp-source -s (concurrent connections)
#        COUNT_<size>_<sessions>=N   messages for that cell, both servers
#                      (defaults below, e.g. COUNT_4096_32=5000)
#        REUSE=1       smtp-source -d: several messages per connection
#                      (default: one message per connection, smtp-source's
#                      default)
#        IDLE_CONNS=1000  idle SMTP connections for the memory figure
#        WAIT=600      seconds to wait for Postfix+Dovecot to deliver a run
#        BENCH_REV=..  label for the source revision in the summary
#        NO_BUILD=1    do not run cargo: use target/release/postamt as it is
#        DROP_CACHES=0 do not drop the page cache before each run
#        VERIFY=1      postamt verifies as by default (SPF, DKIM, DMARC), asking
#                      the machine's resolver; otherwise [verify] is off
#        AT_REST=1     S/MIME encryption at rest for every postamt mailbox
#                      (`postamt user smime` with an RSA-2048 certificate of
#                      the installation's CA): each message is stored
#                      encrypted; the first and last message in each postamt
#                      mailbox must be enveloped-data
#        STORE=postgres  postamt on PostgreSQL (issue 18) instead of SQLite:
#                      a fresh schema in PG_URL (default
#                      postgres://root@127.0.0.1:5432/test), dropped at the end
#        NODES=2       with STORE=postgres: two postamt nodes on that one
#                      schema; each cell's sessions and messages are split
#                      between them (two smtp-source processes, one per
#                      node; time until both are done)
#        SIGNED=1      implies VERIFY=1: every message is the same bench
#                      message signed once with RSA-2048 (dkimpy; d=remote.test),
#                      sent with smtp-source -F to both servers, and postamt
#                      asks a local authoritative DNS (dnslib,
#                      crates/postamt/tests/clients/dns_server.py) that serves
#                      remote.test's SPF (ip4:127.0.0.1), DKIM key and DMARC
#                      (p=reject) records; the first and last message in each
#                      postamt mailbox must say spf=pass, dkim=pass, dmarc=pass
#
# Per cell (size x sessions) it runs postamt first, then Postfix+Dovecot, with
# the same smtp-source command and message count, each into a fresh mailbox
# (one recipient per cell). Time runs from the start of smtp-source to the
# moment the last message is readable in the mailbox:
#   postamt:          smtp-source's exit (postamt answers 250 only after the
#                     message is committed and fsync'd in its store);
#   Postfix+Dovecot:  the ctime of the last message file to appear in the
#                     Dovecot maildir (new/ or cur/), polled until all N are
#                     there.
# Afterwards both mailboxes are checked with POP3 STAT: exactly N messages.
#
# Everything lives in a fresh temp dir; the servers it starts are stopped on
# exit, also on failure (trap). No system-wide service is used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIZES=${SIZES:-"4096 102400"}
SESSIONS=${SESSIONS:-"1 8 32"}
REUSE=${REUSE:-0}
IDLE_CONNS=${IDLE_CONNS:-1000}
WAIT=${WAIT:-600}
PASS=benchpw
FROM=load@remote.test
MAIL_UID=nobody  # Dovecot's mail user (it refuses root)
MAIL_GID=nogroup
SMTP_SOURCE=/usr/sbin/smtp-source

# Default message counts, the same for both servers. Chosen so that each of
# postamt's runs lasts about 5 s on the 2-vCPU machine of the README, and the
# whole script about 5 minutes (Postfix+Dovecot at 250-400 msg/s).
default_count() {
  case "$1_$2" in
    4096_1)    echo 5000 ;;
    4096_8)    echo 15000 ;;
    4096_32)   echo 20000 ;;
    102400_1)  echo 3000 ;;
    102400_8)  echo 6000 ;;
    102400_32) echo 6000 ;;
    *)         echo 2000 ;;
  esac
}
count_for() {
  local var="COUNT_$1_$2"
  echo "${!var:-$(default_count "$1" "$2")}"
}

# Shared helpers: log, die, free_port, wait_port, stop_pid, rss_kb, ratio, …
. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix's master and Dovecot start as root)"

# ---------------------------------------------------------------- setup ----
need_pkgs=()
[ -x "$SMTP_SOURCE" ] && command -v postfix >/dev/null || need_pkgs+=(postfix)
[ -x /usr/lib/dovecot/lmtp ] || need_pkgs+=(dovecot-lmtpd)
[ -x /usr/lib/dovecot/pop3 ] || need_pkgs+=(dovecot-pop3d)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed"

# idle connections + the server's own fds
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
  ulimit -n 8192 || die "cannot raise ulimit -n to 8192"
fi

T=$(mktemp -d /tmp/smtpbench.XXXXXX)
chmod 755 "$T"   # Dovecot's mail user must traverse it; Postfix wants it root-owned
POSTAMT_PID=""
DOVECOT_CONF="$T/dovecot/dovecot.conf"
DOVECOT_STARTED=""
PF_DIR="$T/postfix"
PF_INSTANCE="$ROOT/crates/postamt/tests/clients/postfix_instance.sh"
PF_STARTED=""
CHILD=""         # the running measurement helper (its own process group)
STORE=${STORE:-sqlite}
NODES=${NODES:-1}
PG_URL=${PG_URL:-postgres://root@127.0.0.1:5432/test}
PG_SCHEMA=""     # STORE=postgres: the schema made for this run
POSTAMT2_PID=""  # NODES=2: the second node
DNS_PID=""       # SIGNED=1: the local authoritative DNS

# run_child CMD...: runs CMD in its own process group, in the background, and
# waits for it, so that a signal to this script is handled at once and the
# trap can stop CMD and everything it started (smtp-source).
run_child() {
  local rc=0
  setsid "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return $rc
}

stop_postfix() { sh "$PF_INSTANCE" stop "$PF_DIR" >/dev/null 2>&1 || true; }

stop_dovecot() { stop_dovecot_instance "$DOVECOT_CONF" "$T/dovecot/run/master.pid"; }

stop_postamt() {
  if [ -n "$POSTAMT2_PID" ]; then
    stop_pid "$POSTAMT2_PID" 150
    wait "$POSTAMT2_PID" 2>/dev/null || true
    POSTAMT2_PID=""
  fi
  [ -n "$POSTAMT_PID" ] || return 0
  stop_pid "$POSTAMT_PID" 150
  wait "$POSTAMT_PID" 2>/dev/null || true
  POSTAMT_PID=""
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$CHILD" ]; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 -- "-$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CHILD" 2>/dev/null
  fi
  stop_postamt
  [ -n "$DNS_PID" ] && stop_pid "$DNS_PID" 50
  [ -n "$PF_STARTED" ] && stop_postfix
  [ -n "$DOVECOT_STARTED" ] && stop_dovecot
  [ -n "$PG_SCHEMA" ] && [ "${KEEP:-0}" != 1 ] && psql -X -q -d "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept $T" >&2
  else
    rm -rf "$T"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait until nothing is writing back, so one run's dirty pages do not land in
# the next run's time; then drop the page cache (DROP_CACHES=0: keep it), so
# each run starts from the same state. On this VM a page cache that grows
# into guest memory never touched before makes every copy into it slower
# (a host-side fault per page): without the drop, later runs were up to 40 %
# slower than the same run on a fresh cache, for whichever server ran there.
settle() {
  sync
  if [ "${DROP_CACHES:-1}" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 >/proc/sys/vm/drop_caches
  fi
  sleep 2
}

# The Python helpers (bench/py/): the messages, a Maildir filler, idle
# connections; the scripts below import them from $T.
cp "$ROOT"/bench/py/*.py "$T/"

# run_one.py KIND SMTP_PORT POP3_PORT RCPT SIZE SESSIONS COUNT MAILDIR REUSE WAIT
# Runs smtp-source, waits until every message is readable in the mailbox,
# checks the count over POP3 and prints one RESULT line:
#   RESULT kind size sessions count accept_s total_s msg/s
cat >"$T/run_one.py" <<'EOF'
import os, poplib, subprocess, sys, time
(kind, port, pop3port, rcpt, size, sess, count, maildir, reuse, wait, pw,
 sender, smtp_source) = sys.argv[1:14]
size, sess, count, wait = int(size), int(sess), int(count), float(wait)

def files(d):
    out = []
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(d, sub)) as it:
                out += [e.path for e in it]
        except FileNotFoundError:
            pass
    return out

# MSG_FILE (SIGNED=1): this prepared message (LF line ends) instead of
# smtp-source's own of -l SIZE bytes.
msg_file = os.environ.get("MSG_FILE")
body = ["-F", msg_file] if msg_file else ["-l", str(size)]
cmd = [smtp_source, "-4", "-s", str(sess), "-m", str(count), *body,
       "-f", sender, "-t", rcpt, "-M", "client.test"]
if reuse == "1":
    cmd.append("-d")
cmd.append(f"127.0.0.1:{port}")
if kind == "postfix" and files(maildir):
    sys.exit(f"{maildir} is not empty before the run")

def machine_cpu():
    # busy, iowait, total jiffies of the whole machine
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    busy = user + nice + system + irq + softirq + steal
    return busy, iowait, busy + idle + iowait

def proc_cpu(pid):
    if not pid:
        return 0
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])   # utime + stime

def thread_cpu(pid, name):
    # utime + stime of PID's threads called NAME (postamt's store-indexer)
    if not pid:
        return 0
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{t}/comm").read().strip() == name:
                f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total

cpu_pid = os.environ.get("CPU_PID")
c0, pc0 = machine_cpu(), proc_cpu(cpu_pid)
ic0 = thread_cpu(cpu_pid, "store-indexer")
t0 = time.time()
try:
    p = subprocess.run(cmd, capture_output=True, timeout=wait)
except subprocess.TimeoutExpired:
    sys.exit(f"{kind}: smtp-source did not finish within {wait:.0f} s")
t1 = time.time()
if p.returncode != 0 or p.stderr.strip():
    sys.exit(f"{kind}: smtp-source exit {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}"
             f" {p.stdout.decode(errors='replace')[-500:]}")

if kind == "postamt":
    # 250 was sent only after the message was durable in the store
    tend = t1
    c1, pc1 = machine_cpu(), proc_cpu(cpu_pid)
    ic1 = thread_cpu(cpu_pid, "store-indexer")
else:
    deadline = time.time() + wait
    while True:
        fs = files(maildir)
        if len(fs) >= count:
            break
        if time.time() > deadline:
            sys.exit(f"{kind}: only {len(fs)} of {count} messages delivered after {wait:.0f} s")
        time.sleep(0.1)
    tpoll = time.time()
    c1, pc1 = machine_cpu(), proc_cpu(cpu_pid)
    # the moment the last message file was renamed into the maildir
    tend = max(max(os.stat(f).st_ctime, os.stat(f).st_mtime) for f in fs)
    if tend > tpoll + 0.01:
        sys.exit(f"{kind}: file times after the poll ({tend} > {tpoll}): clock oddity")

# INDEX_DB (postamt): wait until postamt's search indexer has caught up
# (no blobs row with indexed = 0), so that it does not run during the next
# run (Postfix+Dovecot's); the time from the end of smtp-source, and
# postamt's CPU meanwhile. Stores without the column print nothing.
index_db = os.environ.get("INDEX_DB")
if kind == "postamt" and index_db:
    import sqlite3
    con = sqlite3.connect(f"file:{index_db}?mode=ro", uri=True, timeout=30)
    try:
        first = con.execute("SELECT count(*) FROM blobs WHERE indexed = 0").fetchone()[0]
    except sqlite3.OperationalError:
        first = None
    if first is not None:
        ti, pci, left = time.time(), proc_cpu(cpu_pid), first
        while left:
            if time.time() - ti > wait:
                sys.exit(f"{kind}: search indexer still {left} contents behind after {wait:.0f} s")
            time.sleep(0.05)
            left = con.execute("SELECT count(*) FROM blobs WHERE indexed = 0").fetchone()[0]
        hz = os.sysconf("SC_CLK_TCK")
        print(f"INDEX {kind} {size} {sess} backlog_at_end {first} caught_up_s {time.time() - t1:.2f}"
              f" postamt_cpu_s {(proc_cpu(cpu_pid) - pci) / hz:.2f}"
              f" indexer_thread_cpu_s_during_run {(ic1 - ic0) / hz:.2f}"
              f" indexer_thread_cpu_s_after {(thread_cpu(cpu_pid, 'store-indexer') - ic1) / hz:.2f}")
    con.close()

pop = poplib.POP3("127.0.0.1", int(pop3port), timeout=300)
pop.user(rcpt)
pop.pass_(pw)
n, octets = pop.stat()
if n != count:
    sys.exit(f"{kind}: POP3 STAT for {rcpt} says {n} messages, expected {count}")
if kind == "postamt" and os.environ.get("CHECK_AUTH") == "1":
    # postamt's verdicts on the first and the last message stored
    for i in (1, n):
        header = b"\r\n".join(pop.retr(i)[1]).split(b"\r\n\r\n", 1)[0].decode()
        fields = header.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
        ar = [f for f in fields if f.lower().startswith("authentication-results:")]
        print(f"AUTHRES {kind} {size} {sess} message {i}: {ar[0] if ar else '(none)'}")
        if not ar or not all(f"{m}=pass" in ar[0] for m in ("spf", "dkim", "dmarc")):
            sys.exit(f"{kind}: message {i} in {rcpt} does not say spf, dkim and dmarc pass")
if kind == "postamt" and os.environ.get("CHECK_SEALED") == "1":
    for i in (1, n):
        raw = b"\r\n".join(pop.retr(i)[1])
        if b"smime-type=enveloped-data" not in raw:
            sys.exit(f"{kind}: message {i} in {rcpt} is not stored encrypted")
    print(f"SEALED {kind} {size} {sess}: messages 1 and {n} are enveloped-data")
pop.quit()
total = tend - t0
print(f"RESULT {kind} {size} {sess} {count} {t1 - t0:.3f} {total:.3f} {count / total:.1f} {octets}")
# CPU while the load ran (up to the last message readable, or the poll that
# saw it), before the POP3 check: the machine's busy and iowait shares, and
# the CPU seconds of CPU_PID (postamt) if given.
hz = os.sysconf("SC_CLK_TCK")
dt = c1[2] - c0[2]
print(f"CPU {kind} {size} {sess} busy {100 * (c1[0] - c0[0]) / dt:.0f}% iowait {100 * (c1[1] - c0[1]) / dt:.0f}%"
      + (f" postamt_cpu_s {(pc1 - pc0) / hz:.2f}" if cpu_pid else ""))
EOF

# ---------------------------------------------------------------- build ----
# VERIFY=1: postamt checks SPF, DKIM and DMARC of every message as it does
# by default (asking the machine's resolver about the senders' domains);
# otherwise off, as Postfix and Dovecot here verify nothing either.
# SIGNED=1 (implies VERIFY=1): signed messages, and a local DNS for them.
SIGNED=${SIGNED:-0}
[ "$SIGNED" = 1 ] && VERIFY=1
if [ "${VERIFY:-0}" = 1 ]; then
  VERIFY_SECTION=""
else
  VERIFY_SECTION=$'[verify]\nspf = "off"\ndkim = false\ndmarc = "off"'
fi
REV=${BENCH_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')}
if [ "${NO_BUILD:-0}" = 1 ]; then
  log "NO_BUILD=1: not building, using target/release/postamt as it is"
else
  log "building (cargo build --release --bins -p postamt)"
  cargo build --release --bins -p postamt >&2
fi
BIN=$ROOT/target/release
[ -x "$BIN/postamt" ] || die "missing $BIN/postamt"

# one recipient (and so one fresh mailbox) per cell
RCPTS=()
for size in $SIZES; do
  for s in $SESSIONS; do
    RCPTS+=("u${size}s${s}@bench.test")
  done
done

# ------------------------------------------------ signed mail (SIGNED=1) ----
# An RSA-2048 key made here; one signed message per size (dkimpy, once; every
# session sends the same bytes); the zone of remote.test, served by the
# tests' dnslib server to postamt only (Postfix verifies nothing).
DNS_SECTION=""
if [ "$SIGNED" = 1 ]; then
  python3 -c "import dkim, dnslib" 2>/dev/null || die "SIGNED=1 needs the Python modules dkimpy and dnslib (pip install dkimpy dnslib)"
  mkdir -p "$T/signed"
  openssl genrsa -traditional -out "$T/signed/key.pem" 2048 2>/dev/null || die "openssl genrsa failed"
  openssl rsa -in "$T/signed/key.pem" -pubout -outform DER 2>/dev/null | base64 -w0 >"$T/signed/pub.b64"
  for size in $SIZES; do
    n=$(cd "$T" && python3 signed_msg.py "$T/signed/key.pem" "$T/signed/pub.b64" "$size" \
        "$T/signed/msg-$size.txt" "$T/signed/zone.json") || die "signing the $size B message failed"
    log "signed message for $size B: $n bytes on the wire (rsa-sha256, 2048 bits, d=remote.test)"
  done
  python3 "$ROOT/crates/postamt/tests/clients/dns_server.py" "$T/signed/zone.json" >"$T/signed/dns.out" 2>"$T/signed/dns.err" &
  DNS_PID=$!
  for _ in $(seq 1 100); do grep -q '^ready ' "$T/signed/dns.out" && break; sleep 0.1; done
  DNS_PORT=$(awk '$1 == "ready" {print $2}' "$T/signed/dns.out")
  [ -n "$DNS_PORT" ] || { cat "$T/signed/dns.err" >&2; die "the local DNS did not start"; }
  log "local DNS for remote.test on 127.0.0.1:$DNS_PORT (UDP and TCP)"
  DNS_SECTION=$'[dns]\nnameservers = ["127.0.0.1:'"$DNS_PORT"$'"]'
fi

# -------------------------------------------------------------- postamt ----
P_SMTP=$(free_port); P_POP3=$(free_port)
mkdir -p "$T/postamt/data"
STORE_SECTION=""
case "$STORE" in
  sqlite) [ "$NODES" = 1 ] || die "NODES=$NODES needs STORE=postgres" ;;
  postgres)
    command -v psql >/dev/null || die "STORE=postgres needs psql (postgresql-client)"
    PG_SCHEMA="smtpbench_$$"
    psql -X -q -d "$PG_URL" -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null || die "cannot create a schema in $PG_URL"
    case "$PG_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
    STORE_SECTION=$'[store]\nurl = "'"$PG_URL$sep"'options=-csearch_path%3D'"$PG_SCHEMA"$'"\nnode = "a"'
    log "postamt on PostgreSQL: $PG_URL, schema $PG_SCHEMA ($(psql -X -A -t -d "$PG_URL" -c 'SHOW server_version' | tr -d ' '),\
 fsync $(psql -X -A -t -d "$PG_URL" -c 'SHOW fsync'), synchronous_commit $(psql -X -A -t -d "$PG_URL" -c 'SHOW synchronous_commit')); $NODES node(s)"
    ;;
  *) die "STORE=$STORE: sqlite or postgres" ;;
esac
cat >"$T/postamt/postamt.toml" <<EOF
hostname = "bench.test"
domains = ["bench.test"]
data_dir = "$T/postamt/data"

[listen]
smtp = "127.0.0.1:$P_SMTP"
pop3 = "127.0.0.1:$P_POP3"

$VERIFY_SECTION

$DNS_SECTION

[limits]
# room for the $IDLE_CONNS idle connections, all from 127.0.0.1
max_connections = 2000
max_connections_per_ip = 2000

$STORE_SECTION
EOF
for r in "${RCPTS[@]}"; do
  echo "$PASS" | "$BIN/postamt" user add "$r" --password-stdin --config "$T/postamt/postamt.toml" >/dev/null
done
AT_REST=${AT_REST:-0}
if [ "$AT_REST" = 1 ]; then
  "$BIN/postamt" smime ca init --name "Bench CA" --config "$T/postamt/postamt.toml" >/dev/null
  for r in "${RCPTS[@]}"; do
    echo "$PASS" | "$BIN/postamt" smime cert issue "$r" --out "$T/postamt/$r.p12" --password-stdin \
      --config "$T/postamt/postamt.toml" >/dev/null
    "$BIN/postamt" user smime "$r" --config "$T/postamt/postamt.toml" >/dev/null
  done
  log "encryption at rest on for ${#RCPTS[@]} postamt mailboxes"
fi

log "starting postamt (SMTP 127.0.0.1:$P_SMTP, POP3 127.0.0.1:$P_POP3)"
"$BIN/postamt" serve --config "$T/postamt/postamt.toml" >"$T/postamt/stdout" 2>"$T/postamt/stderr" &
POSTAMT_PID=$!
wait_ready "$POSTAMT_PID" "$T/postamt"
POSTAMT_SOURCE=$SMTP_SOURCE
if [ "$NODES" = 2 ]; then
  # The second node: its own data dir and ports, the same schema.
  P2_SMTP=$(free_port); P2_POP3=$(free_port)
  mkdir -p "$T/postamt2/data"
  sed -e "s|$T/postamt/data|$T/postamt2/data|" -e "s|:$P_SMTP\"|:$P2_SMTP\"|" -e "s|:$P_POP3\"|:$P2_POP3\"|" \
      -e 's|^node = "a"|node = "b"|' "$T/postamt/postamt.toml" >"$T/postamt2/postamt.toml"
  log "starting postamt node b (SMTP 127.0.0.1:$P2_SMTP)"
  "$BIN/postamt" serve --config "$T/postamt2/postamt.toml" >"$T/postamt2/stdout" 2>"$T/postamt2/stderr" &
  POSTAMT2_PID=$!
  wait_ready "$POSTAMT2_PID" "$T/postamt2"
  # smtp-source for postamt: half the sessions and messages to each node.
  export SPLIT_SOURCE="$SMTP_SOURCE" SPLIT_PORT2="$P2_SMTP"
  cat >"$T/smtp_source_split.sh" <<'SPLIT'
#!/usr/bin/env bash
# smtp-source ARGS... 127.0.0.1:PORT -> two runs at once, one per node, each
# with half the sessions (-s) and messages (-m); the second to SPLIT_PORT2.
args=("$@"); last=${args[-1]}; unset 'args[-1]'
a=(); b=()
for ((i = 0; i < ${#args[@]}; i++)); do
  v=${args[i]}
  case "$v" in
    -s|-m) n=${args[i+1]}; a+=("$v" "$(( (n + 1) / 2 ))"); b+=("$v" "$(( n / 2 > 0 ? n / 2 : 1 ))"); i=$((i + 1)) ;;
    *) a+=("$v"); b+=("$v") ;;
  esac
done
"$SPLIT_SOURCE" "${a[@]}" "$last" & p1=$!
"$SPLIT_SOURCE" "${b[@]}" "127.0.0.1:$SPLIT_PORT2" & p2=$!
wait $p1 || exit 1
wait $p2 || exit 1
SPLIT
  chmod +x "$T/smtp_source_split.sh"
  POSTAMT_SOURCE="$T/smtp_source_split.sh"
fi

# ------------------------------------------------------- memory (fresh) ----
log "postamt: $IDLE_CONNS idle SMTP connections"
echo "postamt RSS right after start: $(rss_detail "$POSTAMT_PID")"
read -r C_BEFORE C_AFTER C_PER < <(python3 "$T/idle_conns.py" "$P_SMTP" "$POSTAMT_PID" "$IDLE_CONNS" "220 ")
C_DELTA=$((C_AFTER - C_BEFORE))
echo "postamt RSS: $C_BEFORE kB before, $C_AFTER kB with $IDLE_CONNS idle SMTP connections:" \
     "+$C_DELTA kB, $C_PER bytes per connection"
sleep 1   # let postamt see the closes before the load starts

# -------------------------------------------------------------- Dovecot ----
D_LMTP=$(free_port); D_POP3=$(free_port)
mkdir -p "$T/dovecot/run" "$T/dovecot/home"
: >"$T/dovecot/passwd"
for r in "${RCPTS[@]}"; do
  echo "$r:{PLAIN}$PASS" >>"$T/dovecot/passwd"
  mkdir -p "$T/dovecot/home/${r%@*}"
done
chown -R "$MAIL_UID:$MAIL_GID" "$T/dovecot/home"
# Dovecot's defaults (lib.sh), in particular mail_fsync = optimized: a
# delivered message file is fsync'd before it is renamed into new/ and LMTP
# answers 250.
{
  dovecot_conf smtpbench "lmtp pop3" "$T/dovecot/home/%n"
  echo "lmtp_save_to_detail_mailbox = no"
  dovecot_listener lmtp lmtp "$D_LMTP"
  dovecot_listener pop3-login pop3 "$D_POP3"
} >"$DOVECOT_CONF"
start_dovecot "$D_LMTP" "$D_POP3"

# -------------------------------------------------------------- Postfix ----
# A private instance (own config, queue and data dirs, log file), loopback
# only, no chroot. Postfix defaults otherwise: the cleanup daemon fsyncs the
# queue file before smtpd answers 250; in_flow_delay = 1s; LMTP destination
# concurrency up to 20 (default_destination_concurrency_limit).
PF_SMTP=$(free_port)
POSTFIX_VERSION=$(postconf -d -h mail_version)
# The tests' private instance (crates/postamt/tests/clients/postfix_instance.sh)
# with Postfix's defaults for everything it does not need.
POSTFIX_DEFAULTS=1 sh "$PF_INSTANCE" create "$PF_DIR" "$PF_SMTP" "lmtp:inet:127.0.0.1:$D_LMTP" bench.test
postconf -c "$PF_DIR/etc" -e "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
log "starting Postfix $POSTFIX_VERSION (SMTP 127.0.0.1:$PF_SMTP -> LMTP 127.0.0.1:$D_LMTP)"
PF_STARTED=1
sh "$PF_INSTANCE" start "$PF_DIR" >/dev/null || { cat "$PF_DIR/maillog" >&2 2>/dev/null; die "postfix did not start"; }
wait_port "$PF_SMTP" 30 || { cat "$PF_DIR/maillog" >&2; die "Postfix not listening after 30 s"; }

# ----------------------------------------------------------- throughput ----
RESULTS="$T/results.txt"
: >"$RESULTS"
for size in $SIZES; do
  for s in $SESSIONS; do
    n=$(count_for "$size" "$s")
    r="u${size}s${s}@bench.test"
    msg_env=()
    [ "$SIGNED" = 1 ] && msg_env=(MSG_FILE="$T/signed/msg-$size.txt" CHECK_AUTH=1)
    [ "$AT_REST" = 1 ] && msg_env+=(CHECK_SEALED=1)
    settle
    log "postamt: $n x $size B, $s sessions"
    index_env=()
    [ "$STORE" = sqlite ] && index_env=(INDEX_DB="$T/postamt/data/postamt.db")
    run_child env CPU_PID="$POSTAMT_PID" "${index_env[@]}" "${msg_env[@]}" python3 "$T/run_one.py" postamt "$P_SMTP" "$P_POP3" "$r" "$size" "$s" "$n" - \
      "$REUSE" "$WAIT" "$PASS" "$FROM" "$POSTAMT_SOURCE" >"$T/one.txt"
    cat "$T/one.txt" | tee -a "$RESULTS"
    settle
    log "Postfix+Dovecot: $n x $size B, $s sessions"
    run_child env "${msg_env[@]}" python3 "$T/run_one.py" postfix "$PF_SMTP" "$D_POP3" "$r" "$size" "$s" "$n" \
      "$T/dovecot/home/${r%@*}/Maildir" "$REUSE" "$WAIT" "$PASS" "$FROM" "$SMTP_SOURCE" >"$T/one.txt"
    cat "$T/one.txt" | tee -a "$RESULTS"
  done
done
P_RSS_END=$(awk '/^VmRSS:/ {print $2}' "/proc/$POSTAMT_PID/status")
echo "postamt RSS after all runs: $(rss_detail "$POSTAMT_PID")"
PF_QUEUE=$(find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" "$PF_DIR/queue/hold" -type f 2>/dev/null | wc -l)
echo "Postfix queue files left (incoming/active/deferred/hold): $PF_QUEUE"

# ---------------------------------------------------------------- logs -----
stop_postamt
echo "--- log check"
if grep -qiE 'panic|error|warn' "$T/postamt/stderr" 2>/dev/null; then
  echo "postamt log (warnings/errors, first 20):"; grep -iE 'panic|error|warn' "$T/postamt/stderr" | head -20
else
  echo "postamt log: no warnings or errors ($(wc -l <"$T/postamt/stderr") lines)"
fi
if grep -qiE 'error|fatal|panic|warning' "$T/dovecot/dovecot.log" 2>/dev/null; then
  echo "Dovecot log (errors/warnings, first 20):"; grep -iE 'error|fatal|panic|warning' "$T/dovecot/dovecot.log" | head -20
else
  echo "Dovecot log: no warnings or errors"
fi
if grep -qiE 'warning|error|fatal|panic|status=(deferred|bounced)' "$PF_DIR/maillog" 2>/dev/null; then
  echo "Postfix log (warnings/errors/deferrals, first 20):"
  grep -iE 'warning|error|fatal|panic|status=(deferred|bounced)' "$PF_DIR/maillog" | head -20
else
  echo "Postfix log: no warnings, errors, deferrals or bounces"
fi
echo "Postfix log: $(grep -c 'status=sent' "$PF_DIR/maillog" 2>/dev/null || echo 0) deliveries with status=sent"

# -------------------------------------------------------------- summary ----
field() { awk -v k="$1" -v z="$2" -v s="$3" -v f="$4" '$1=="RESULT" && $2==k && $3==z && $4==s {print $f}' "$RESULTS"; }

mode="one message per connection"
[ "$REUSE" = 1 ] && mode="several messages per connection (smtp-source -d)"
if [ "$SIGNED" = 1 ]; then
  mode="$mode; postamt verifying (SPF, DKIM, DMARC; local DNS); messages signed with RSA-2048 (smtp-source -F)"
elif [ "${VERIFY:-0}" = 1 ]; then
  mode="$mode; postamt verifying (SPF, DKIM, DMARC; the machine's resolver)"
fi
cat <<EOF

================================ summary ================================
machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
Postfix $POSTFIX_VERSION, Dovecot $DOVECOT_VERSION    date: $(date -u '+%Y-%m-%d %H:%M UTC')    postamt: $REV
smtp-source, $mode; msg/s = messages / (start of smtp-source .. last message readable)

| size (-l) | sessions | messages | postamt msg/s | Postfix+Dovecot msg/s | ratio | P+D accepted by smtpd (msg/s) |
|---|---:|---:|---:|---:|---:|---:|
EOF
for size in $SIZES; do
  for s in $SESSIONS; do
    pn=$(field postamt "$size" "$s" 8); dn=$(field postfix "$size" "$s" 8)
    cnt=$(field postamt "$size" "$s" 5)
    dacc=$(awk -v n="$cnt" -v t="$(field postfix "$size" "$s" 6)" 'BEGIN {printf "%.1f", n/t}')
    echo "| $size | $s | $cnt | $pn | $dn | $(ratio "$pn" "$dn") | $dacc |"
  done
done
cpuf() { awk -v k="$1" -v z="$2" -v s="$3" -v f="$4" '$1=="CPU" && $2==k && $3==z && $4==s {print $f}' "$RESULTS"; }
cat <<EOF

machine CPU while the load ran (both vCPUs; smtp-source runs on the same machine):
| size | sessions | postamt: busy / iowait | postamt process CPU s | P+D: busy / iowait |
|---|---:|---:|---:|---:|
EOF
for size in $SIZES; do
  for s in $SESSIONS; do
    echo "| $size | $s | $(cpuf postamt "$size" "$s" 6) / $(cpuf postamt "$size" "$s" 8) | $(cpuf postamt "$size" "$s" 10) | $(cpuf postfix "$size" "$s" 6) / $(cpuf postfix "$size" "$s" 8) |"
  done
done
if grep -q '^INDEX ' "$RESULTS"; then
  cat <<EOF

postamt's search indexer after each postamt run (waited for before the POP3 check and the Postfix+Dovecot run):
| size | sessions | contents not indexed when smtp-source ended | caught up (s after smtp-source ended) | postamt CPU s meanwhile | indexer thread CPU s during the run / after |
|---|---:|---:|---:|---:|---:|
EOF
  awk '$1=="INDEX" {print "| " $3 " | " $4 " | " $6 " | " $8 " | " $10 " | " $12 " / " $14 " |"}' "$RESULTS"
fi
TGT_SIZE=$(echo "$SIZES" | awk '{print $1}')
P32=$(field postamt "$TGT_SIZE" 32 8); D32=$(field postfix "$TGT_SIZE" 32 8)
cat <<EOF

postamt RSS: $(mb "$C_BEFORE") MB fresh, $(mb "$C_AFTER") MB with $IDLE_CONNS idle SMTP connections (+$(mb "$C_DELTA") MB, $C_PER B each); $(mb "$P_RSS_END") MB after all runs

targets:
EOF
if [ -n "$P32" ] && [ -n "$D32" ]; then
  echo "  >= 10x Postfix+Dovecot msg/s at 32 connections, $TGT_SIZE B:  $(ratio "$P32" "$D32")x -> $(yes_no "$P32 >= 10 * $D32")"
fi
for size in $SIZES; do
  [ "$size" = "$TGT_SIZE" ] && continue
  p=$(field postamt "$size" 32 8); d=$(field postfix "$size" 32 8)
  [ -n "$p" ] && [ -n "$d" ] && echo "  (same at $size B:                                   $(ratio "$p" "$d")x -> $(yes_no "$p >= 10 * $d"))"
done
echo "  $IDLE_CONNS idle SMTP connections add < 64 MB RSS:          +$(mb "$C_DELTA") MB -> $(yes_no "$C_DELTA < 64 * 1024")"
