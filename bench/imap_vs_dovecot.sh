#!/usr/bin/env bash
# IMAP benchmark: postamt side by side with Debian's Dovecot 2.3, on this
# machine, loopback only. See bench/README.md, section "IMAP: postamt vs
# Dovecot", for what each figure means.
#
# usage: bench/imap_vs_dovecot.sh     (as root: Dovecot's master starts as root;
#                                      installs dovecot-imapd and dovecot-lmtpd
#                                      if missing)
# It does not build anything: it uses prebuilt binaries from BIN_DIR
# (`cargo build --release --bins --examples -p postamt` makes them).
#
# env:   BIN_DIR=...      where `postamt` and `bench_fill` are (bench_fill may
#                         also be in BIN_DIR/examples); default target/release
#        N_BIG=100000     messages in the big mailbox (SELECT, FETCH FLAGS)
#        SIZE_BIG=2048    ~bytes per message there
#        N=10000          messages in the FETCH ENVELOPE / BODY.PEEK[] mailbox
#        SIZE=4096        ~bytes per message there
#        ROUNDS=5         warm rounds (each a new session)
#        IDLE_CONNS=10000 concurrent connections in IDLE for the memory figure
#        IDLE_CONCURRENCY=8  logins in flight while opening them (postamt
#                         refuses more than 10 logins in flight per IP, see
#                         README)
#        MIN_AVAIL_MB=3072  stop opening IDLE connections when MemAvailable
#                         falls below this (the figure then says how many)
#        LAT_N=200        deliveries for the delivery-to-IDLE latency
#        STORE=postgres   postamt on PostgreSQL (issue 18): a fresh schema in
#                         PG_URL (default postgres://root@127.0.0.1:5432/test),
#                         dropped at the end
#        NODES=2          with STORE=postgres: a second postamt node on the
#                         same schema; the latency test then also delivers
#                         over SMTP to node A and waits for EXISTS in IDLE on
#                         node B
#        KEEP=1           keep the temp dir (configs, logs, stores)
#        BENCH_REV=..     label for the source revision in the summary
#
# Everything lives in a fresh temp dir; the servers it starts are stopped on
# exit, also on failure (trap). The system-wide Dovecot service is not used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BIN_DIR=${BIN_DIR:-$ROOT/target/release}
N_BIG=${N_BIG:-100000}
SIZE_BIG=${SIZE_BIG:-2048}
N=${N:-10000}
SIZE=${SIZE:-4096}
ROUNDS=${ROUNDS:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_CONCURRENCY=${IDLE_CONCURRENCY:-8}
MIN_AVAIL_MB=${MIN_AVAIL_MB:-3072}
LAT_N=${LAT_N:-200}
LAT_SIZE=2048    # ~bytes per delivered message in the latency test
SMALL_N=10       # messages already in the IDLE mailboxes
PAUSE=2          # seconds between the cold SELECT and the warm rounds
PASS=benchpw
USER_BIG=big@bench.test
USER_A=user@bench.test
USER_LAT=lat@bench.test
USER_IDLE=idle@bench.test
MAIL_UID=nobody  # Dovecot refuses uid 0; nobody/nogroup exists on Debian
MAIL_GID=nogroup
export IDLE_CONCURRENCY MIN_AVAIL_MB

# Shared helpers: log, die, free_port, wait_port, stop_pid, rss_kb, ratio, …
. "$ROOT/bench/lib.sh"

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot must start as root)"

# ---------------------------------------------------------------- setup ----
need_dovecot imap:dovecot-imapd lmtp:dovecot-lmtpd

POSTAMT=$BIN_DIR/postamt
FILL=$BIN_DIR/bench_fill
[ -x "$FILL" ] || FILL=$BIN_DIR/examples/bench_fill
[ -x "$POSTAMT" ] || die "missing $POSTAMT (cargo build --release --bins --examples -p postamt, or set BIN_DIR)"
[ -x "$FILL" ] || die "missing $BIN_DIR/bench_fill and $BIN_DIR/examples/bench_fill"

# Every IDLE connection costs the client one descriptor and the server one
# (postamt) or several across its processes (Dovecot's imap process, the
# log/anvil/stats services' ends): raise the soft limit as far as the hard
# limit allows (raising the hard limit needs CAP_SYS_RESOURCE).
NOFILE_WANT=$((IDLE_CONNS + 4096))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NOFILE_WANT" ]; then
  ulimit -Hn "$NOFILE_WANT" 2>/dev/null || true
  HARD=$(ulimit -Hn)
fi
if [ "$HARD" = unlimited ] || [ "$HARD" -ge "$NOFILE_WANT" ]; then
  ulimit -n "$NOFILE_WANT"
else
  ulimit -n "$HARD"
  if [ "$HARD" -lt $((IDLE_CONNS + 1024)) ]; then
    log "ulimit -n is capped at $HARD: IDLE_CONNS lowered from $IDLE_CONNS to $((HARD - 1024))"
    IDLE_CONNS=$((HARD - 1024))
  fi
fi
NOFILE=$(ulimit -n)

dovecot_bench_setup imapbench

# The Python helpers (bench/py/): the messages, a Maildir filler, idle
# connections; the scripts below import them from $T.
cp "$ROOT"/bench/py/*.py "$T/"

# The benchmark client (standard library only; see its header).
cat >"$T/imapc.py" <<'PYEOF'
# IMAP benchmark client (standard library only). Subcommands:
#   select  PORT USER PASS ROUNDS PAUSE   cold + warm SELECT and FETCH 1:* (FLAGS),
#                                         then UNSELECT+SELECT in one session
#   fetch   PORT USER PASS ROUNDS SIZE    FETCH (FLAGS ENVELOPE) / UID FETCH BODY.PEEK[]
#                                         (twice: the second time for information)
#   latency PORT USER PASS DPORT PROTO N  delivery (smtp|lmtp) -> IDLE EXISTS latency
#   idle    PORT USER PASS N MODE PID     N connections in IDLE, server RSS before/after
# Every socket operation has a timeout; every result line starts with a keyword.
import asyncio, os, re, select, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from msg import bench_message, delivered

TIMEOUT = float(os.environ.get("IMAP_TIMEOUT", "300"))
now = time.perf_counter

class Imap:
    """One IMAP connection. run() times a command and counts its response
    without keeping it (fast path: a few bytes.find per chunk, literals are
    skipped by length); cmd() keeps the response lines and literals."""

    def __init__(self, port, timeout=TIMEOUT):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = bytearray()
        self.n = 0
        greeting = self._line()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting {greeting!r}")

    def _recv(self):
        d = self.s.recv(4 << 20)
        if not d:
            raise EOFError("server closed the connection")
        return d

    def _line(self):
        while True:
            e = self.pending.find(b"\r\n")
            if e >= 0:
                line = bytes(self.pending[:e])
                del self.pending[: e + 2]
                return line
            self.pending += self._recv()

    def _exact(self, n):
        while len(self.pending) < n:
            self.pending += self._recv()
        d = bytes(self.pending[:n])
        del self.pending[:n]
        return d

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def cmd(self, text):
        """Send a command; return (ms, tagged line, [untagged lines], [literals])."""
        tag = self.tag()
        t0 = now()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        lines, lits = [], []
        while True:
            line = self._line()
            full = line
            while True:
                m = re.search(rb"~?\{(\d+)\+?\}$", line)
                if not m:
                    break
                lits.append(self._exact(int(m.group(1))))
                line = self._line()
                full += b"{}" + line
            if full.startswith(tag + b" "):
                ms = (now() - t0) * 1000
                if not full.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r}: {full!r}")
                return ms, full, lines, lits
            lines.append(full)

    def run(self, text):
        """Send a command, count its response; return (ms, bytes, literals, literal bytes)."""
        tag = self.tag()
        needle = b"\r\n" + tag + b" "
        L = len(needle)
        buf = bytearray(b"\r\n")  # the response starts at a line start
        buf += self.pending
        self.pending = bytearray()
        i = skip = nbytes = nlit = litbytes = 0
        t0 = now()
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            while True:
                if skip:
                    avail = len(buf) - i
                    if avail < skip:
                        skip -= avail
                        i = len(buf)
                        break
                    i += skip
                    skip = 0
                j = buf.find(b"}\r\n", i)
                end = j if j >= 0 else len(buf)
                k = buf.find(needle, i, end)
                if k >= 0:
                    e = buf.find(b"\r\n", k + L)
                    if e < 0:
                        i = k
                        break
                    ms = (now() - t0) * 1000
                    tagline = bytes(buf[k + 2 : e])
                    self.pending = buf[e + 2 :]
                    if not tagline.startswith(tag + b" OK"):
                        raise RuntimeError(f"{text!r}: {tagline!r}")
                    return ms, nbytes, nlit, litbytes
                if j < 0:
                    i = max(i, len(buf) - L + 1)
                    break
                b = buf.rfind(b"{", max(0, j - 24), j)
                digits = bytes(buf[b + 1 : j]).rstrip(b"+") if b >= 0 else b""
                if digits.isdigit():
                    n = int(digits)
                    nlit += 1
                    litbytes += n
                    i = j + 3
                    skip = n
                else:
                    i = j + 1
            if i > (1 << 20):
                del buf[: i - 64]
                i = 64
            d = self._recv()
            nbytes += len(d)
            buf += d

    def login(self, user, pw):
        return self.cmd(f'LOGIN "{user}" "{pw}"')[0]

    def select(self, box="INBOX"):
        ms, _, lines, _ = self.cmd(f"SELECT {box}")
        exists = None
        for l in lines:
            m = re.match(rb"\* (\d+) EXISTS", l)
            if m:
                exists = int(m.group(1))
        return ms, exists

    def logout(self):
        try:
            self.cmd("LOGOUT")
        except (EOFError, OSError, RuntimeError):
            pass
        self.s.close()

def f2(x):
    return f"{x:.2f}"

def cmd_select(port, user, pw, rounds, pause):
    """Round 0 is the cold SELECT (first after server start / after filling);
    each later round is a new session: LOGIN, SELECT, FETCH 1:* (FLAGS), LOGOUT."""
    for r in range(rounds + 1):
        if r == 1:
            time.sleep(pause)
        c = Imap(port)
        lms = c.login(user, pw)
        sms, exists = c.select()
        fms, fbytes, _, _ = c.run("FETCH 1:* (FLAGS)")
        c.logout()
        kind = "cold" if r == 0 else "warm"
        print(f"select {kind} round={r} exists={exists} login_ms={f2(lms)} select_ms={f2(sms)} "
              f"fetch_flags_ms={f2(fms)} fetch_flags_bytes={fbytes}", flush=True)
    # for information: SELECT again within one session (UNSELECT, SELECT)
    c = Imap(port)
    c.login(user, pw)
    c.select()
    for r in range(1, rounds + 1):
        c.cmd("UNSELECT")
        sms, exists = c.select()
        print(f"select again round={r} exists={exists} select_ms={f2(sms)}", flush=True)
    c.logout()

def check_body(c, uid, size, user):
    _, _, _, lits = c.cmd(f"UID FETCH {uid} BODY.PEEK[]")
    got = lits[0]
    i = int(re.search(rb"^Subject: message (\d+)\r$", got, re.M).group(1))
    if got != delivered(i, size, user):
        sys.exit(f"UID {uid} (bench message {i}) differs from bench_message({i}, {size})")

def cmd_fetch(port, user, pw, rounds, size):
    """Round 0 is a warm-up (also the first SELECT of this mailbox); each round
    is a new session: LOGIN, SELECT, FETCH 1:* (FLAGS ENVELOPE),
    UID FETCH 1:* BODY.PEEK[], LOGOUT."""
    c = Imap(port)
    c.login(user, pw)
    _, exists = c.select()
    _, _, lines, _ = c.cmd("UID SEARCH ALL")
    uids = [int(x) for l in lines if l.startswith(b"* SEARCH") for x in l.split()[2:]]
    check_body(c, uids[0], size, user)
    check_body(c, uids[-1], size, user)
    c.logout()
    print(f"verify exists={exists} first_uid={uids[0]} last_uid={uids[-1]} ok", flush=True)
    for r in range(rounds + 1):
        c = Imap(port)
        c.login(user, pw)
        _, exists = c.select()
        cpu0 = time.process_time()
        ems, ebytes, _, _ = c.run("FETCH 1:* (FLAGS ENVELOPE)")
        cpu1 = time.process_time()
        bms, bbytes, nlit, litbytes = c.run("UID FETCH 1:* BODY.PEEK[]")
        cpu2 = time.process_time()
        # for information: the same again in the same session
        b2ms, _, nlit2, _ = c.run("UID FETCH 1:* BODY.PEEK[]")
        c.logout()
        if nlit != exists or nlit2 != exists:
            sys.exit(f"BODY.PEEK[] returned {nlit}/{nlit2} literals for {exists} messages")
        kind = "warmup" if r == 0 else "round"
        print(f"fetch {kind} round={r} exists={exists} env_ms={f2(ems)} env_bytes={ebytes} "
              f"env_msgs_s={exists / ems * 1000:.0f} env_mb_s={ebytes / ems / 1000:.1f} "
              f"body_ms={f2(bms)} body_bytes={bbytes} body_octets={litbytes} "
              f"body_msgs_s={exists / bms * 1000:.0f} body_mb_s={bbytes / bms / 1000:.1f} "
              f"client_cpu_env_ms={(cpu1 - cpu0) * 1000:.1f} client_cpu_body_ms={(cpu2 - cpu1) * 1000:.1f} "
              f"body2_ms={f2(b2ms)} body2_msgs_s={exists / b2ms * 1000:.0f}", flush=True)

class Lines:
    """Buffered line reader over a socket that select() says is readable."""

    def __init__(self, s):
        self.s, self.buf = s, bytearray()

    def feed(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def lines(self):
        out = []
        while True:
            e = self.buf.find(b"\r\n")
            if e < 0:
                return out
            out.append(bytes(self.buf[:e]))
            del self.buf[: e + 2]

    def reply(self, timeout=30):
        """One complete SMTP/LMTP reply (multi-line aware): (code, text)."""
        end = time.time() + timeout
        text = []
        while True:
            for l in self.lines():
                text.append(l)
                if len(l) < 4 or l[3:4] != b"-":
                    # lines after a final one would be lost; SMTP sends none unasked
                    return int(l[:3]), b"\n".join(text)
            r, _, _ = select.select([self.s], [], [], max(0, end - time.time()))
            if not r:
                raise TimeoutError("no SMTP/LMTP reply")
            self.feed()

def cmd_latency(port, user, pw, dport, proto, n, size, gap):
    c = Imap(port)
    c.login(user, pw)
    _, exists = c.select()
    c.s.sendall(b"idle IDLE\r\n")
    cont = c._line()
    if not cont.startswith(b"+"):
        sys.exit(f"IDLE: {cont!r}")
    il = Lines(c.s)
    il.buf = c.pending
    d = socket.create_connection(("127.0.0.1", dport), timeout=30)
    d.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    dl = Lines(d)
    code, _ = dl.reply()
    assert code == 220, code
    d.sendall((b"LHLO" if proto == "lmtp" else b"EHLO") + b" client.test\r\n")
    code, _ = dl.reply()
    assert code == 250, code
    ack_lat, data_lat, missed = [], [], 0
    last = exists
    for i in range(n):
        for line, want in ((b"MAIL FROM:<bench@remote.test>", 250), (f"RCPT TO:<{user}>".encode(), 250), (b"DATA", 354)):
            d.sendall(line + b"\r\n")
            code, text = dl.reply()
            if code != want:
                sys.exit(f"{line!r}: {text!r}")
        body = bench_message(1000000 + i, size)
        t_send = now()
        d.sendall(body + b".\r\n")
        t_ack = t_exists = None
        end = time.time() + 10
        while (t_ack is None or t_exists is None) and time.time() < end:
            r, _, _ = select.select([d, c.s], [], [], max(0, end - time.time()))
            if d in r:
                dl.feed()
                code, text = dl.reply()
                t_ack = now()
                if code != 250:
                    sys.exit(f"end of DATA: {text!r}")
            if c.s in r:
                il.feed()
                for l in il.lines():
                    m = re.match(rb"\* (\d+) EXISTS", l)
                    if m and int(m.group(1)) > last:
                        last = int(m.group(1))
                        t_exists = now()
                    elif l.startswith(b"* BYE"):
                        sys.exit(f"IDLE: {l!r}")
        if t_ack is None:
            sys.exit("no reply to the end of DATA within 10 s")
        if t_exists is None:
            missed += 1
        else:
            ack_lat.append((t_exists - t_ack) * 1000)
            data_lat.append((t_exists - t_send) * 1000)
        time.sleep(gap)
    d.sendall(b"QUIT\r\n")
    d.close()
    c.s.sendall(b"DONE\r\n")
    c.logout()

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")

    print("latency raw_ack_ms " + " ".join(f"{x:.2f}" for x in ack_lat))
    print(f"latency n={n} missed={missed} ack_p50_ms={pct(ack_lat, 50):.2f} ack_p99_ms={pct(ack_lat, 99):.2f} "
          f"ack_min_ms={min(ack_lat, default=float('nan')):.2f} ack_max_ms={max(ack_lat, default=float('nan')):.2f} "
          f"data_p50_ms={pct(data_lat, 50):.2f} data_p99_ms={pct(data_lat, 99):.2f} "
          f"ack_before_exists={sum(1 for x in ack_lat if x >= 0)} exists_before_ack={sum(1 for x in ack_lat if x < 0)}",
          flush=True)

def children_map():
    kids = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(p))
    return kids

def mem(mode, pid):
    """(processes, sum VmRSS kB, sum Pss kB) of pid (postamt) or of pid and
    all its descendants (dovecot)."""
    pids = [pid]
    if mode == "tree":
        kids = children_map()
        i = 0
        while i < len(pids):
            pids += kids.get(pids[i], [])
            i += 1
    rss = pss = count = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                r = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")]
            with open(f"/proc/{p}/smaps_rollup") as f:
                s = [int(l.split()[1]) for l in f if l.startswith("Pss:")]
        except OSError:
            continue
        if r:  # kernel threads and zombies have no VmRSS
            count += 1
            rss += r[0]
            pss += s[0] if s else 0
    return count, rss, pss

def mem_available_mb():
    with open("/proc/meminfo") as f:
        for l in f:
            if l.startswith("MemAvailable:"):
                return int(l.split()[1]) // 1024

async def idle_main(port, user, pw, n, mode, pid, concurrency, min_avail_mb, deadline_s):
    before = mem(mode, pid)
    print(f"idle before procs={before[0]} rss_kb={before[1]} pss_kb={before[2]}", flush=True)
    conns, errors = [], []
    stop = asyncio.Event()
    sem = asyncio.Semaphore(concurrency)
    t_end = time.time() + deadline_s
    lowmem = False

    async def readto(r, prefix, t=60):
        while True:
            l = await asyncio.wait_for(r.readline(), t)
            if not l:
                raise EOFError("closed")
            if l.startswith(prefix):
                return l

    async def one(i):
        nonlocal lowmem
        async with sem:
            if stop.is_set():
                return
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 60)
                await readto(r, b"* OK")
                w.write(f'a LOGIN "{user}" "{pw}"\r\n'.encode())
                l = await readto(r, b"a ")
                if not l.startswith(b"a OK"):
                    raise RuntimeError(l)
                w.write(b"b SELECT INBOX\r\n")
                l = await readto(r, b"b ")
                if not l.startswith(b"b OK"):
                    raise RuntimeError(l)
                w.write(b"c IDLE\r\n")
                l = await readto(r, b"+")
                conns.append((r, w))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{type(e).__name__}: {e}"[:200])
                if len(errors) >= 50:
                    stop.set()
            if len(conns) % 200 == 0 and conns:
                if mem_available_mb() < min_avail_mb:
                    lowmem = True
                    stop.set()
            if time.time() > t_end:
                stop.set()

    t0 = time.time()
    await asyncio.gather(*(one(i) for i in range(n)))
    ramp = time.time() - t0
    await asyncio.sleep(3)
    closed = sum(1 for r, _ in conns if r.at_eof())
    after = mem(mode, pid)
    print(f"idle after procs={after[0]} rss_kb={after[1]} pss_kb={after[2]} conns={len(conns)} wanted={n} "
          f"closed={closed} errors={len(errors)} lowmem={int(lowmem)} ramp_s={ramp:.1f} "
          f"mem_available_mb={mem_available_mb()}", flush=True)
    for e in sorted(set(errors))[:5]:
        print(f"idle error {e}", flush=True)
    for _, w in conns:
        w.close()
    await asyncio.sleep(3)
    gone = mem(mode, pid)
    print(f"idle closed procs={gone[0]} rss_kb={gone[1]} pss_kb={gone[2]}", flush=True)

def main():
    a = sys.argv[1:]
    if a[0] == "select":
        cmd_select(int(a[1]), a[2], a[3], int(a[4]), float(a[5]))
    elif a[0] == "fetch":
        cmd_fetch(int(a[1]), a[2], a[3], int(a[4]), int(a[5]))
    elif a[0] == "latency":
        cmd_latency(int(a[1]), a[2], a[3], int(a[4]), a[5], int(a[6]), int(a[7]), float(a[8]))
    elif a[0] == "idle":
        asyncio.run(idle_main(int(a[1]), a[2], a[3], int(a[4]), a[5], int(a[6]),
                              int(os.environ.get("IDLE_CONCURRENCY", "32")),
                              int(os.environ.get("MIN_AVAIL_MB", "3072")),
                              float(os.environ.get("IDLE_DEADLINE", "900"))))
    else:
        sys.exit(f"unknown subcommand {a[0]}")

if __name__ == "__main__":
    main()
PYEOF

# median of numbers on stdin; raw list of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
raw() { paste -sd' ' -; }
# fld NAME: the value of " NAME=" on each input line
fld() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# ---------------------------------------------------------- fill stores ----
REV=${BENCH_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')}
BIN_ID="$POSTAMT ($(date -u -r "$POSTAMT" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$POSTAMT" | cut -c1-12))"
log "postamt binary: $BIN_ID"

log "filling the postamt store: $N_BIG x $SIZE_BIG B ($USER_BIG), $N x $SIZE B ($USER_A), $SMALL_N x $LAT_SIZE B ($USER_LAT, $USER_IDLE)"
mkdir -p "$T/postamt/data"
DB=$T/postamt/data/postamt.db
STORE=${STORE:-sqlite}
NODES=${NODES:-1}
STORE_SECTION=""
if [ "$STORE" = postgres ]; then
  PG_URL=${PG_URL:-postgres://root@127.0.0.1:5432/test}
  PG_SCHEMA="imapbench_$$"
  psql -X -q -d "$PG_URL" -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null || die "cannot create a schema in $PG_URL"
  case "$PG_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
  DB="$PG_URL${sep}options=-csearch_path%3D$PG_SCHEMA"
  STORE_SECTION=$'[store]\nurl = "'"$DB"$'"\nnode = "a"'
  log "postamt on PostgreSQL $(psql -X -A -t -d "$PG_URL" -c 'SHOW server_version' | tr -d ' '), schema $PG_SCHEMA, $NODES node(s)"
elif [ "$NODES" != 1 ]; then
  die "NODES=$NODES needs STORE=postgres"
fi
t0=$(date +%s.%N)
"$FILL" "$DB" bench.test "$USER_BIG" "$PASS" "$N_BIG" "$SIZE_BIG"
"$FILL" "$DB" bench.test "$USER_A" "$PASS" "$N" "$SIZE"
"$FILL" "$DB" bench.test "$USER_LAT" "$PASS" "$SMALL_N" "$LAT_SIZE"
"$FILL" "$DB" bench.test "$USER_IDLE" "$PASS" "$SMALL_N" "$LAT_SIZE"
echo "postamt store filled in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}') s"

log "filling the Dovecot maildirs with the same messages"
mkdir -p "$T/dovecot/home" "$T/dovecot/run"
t0=$(date +%s.%N)
python3 "$T/fill_maildir.py" "$T/dovecot/home/big/Maildir" "$N_BIG" "$SIZE_BIG" "$USER_BIG"
python3 "$T/fill_maildir.py" "$T/dovecot/home/user/Maildir" "$N" "$SIZE" "$USER_A"
python3 "$T/fill_maildir.py" "$T/dovecot/home/lat/Maildir" "$SMALL_N" "$LAT_SIZE" "$USER_LAT"
python3 "$T/fill_maildir.py" "$T/dovecot/home/idle/Maildir" "$SMALL_N" "$LAT_SIZE" "$USER_IDLE"
chown -R "$MAIL_UID:$MAIL_GID" "$T/dovecot/home"
echo "Dovecot maildirs filled in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}') s"
sync   # no writeback of the fill during the measurements

IMAPC="timeout 1800 python3 $T/imapc.py"

# -------------------------------------------------------------- postamt ----
P_IMAP=$(free_port); P_SMTP=$(free_port); P_LMTP=$(free_port)
cat >"$T/postamt/postamt.toml" <<EOF
hostname = "bench.test"
domains = ["bench.test"]
data_dir = "$T/postamt/data"

[listen]
imap = "127.0.0.1:$P_IMAP"
smtp = "127.0.0.1:$P_SMTP"
lmtp = "127.0.0.1:$P_LMTP"

# Postfix and Dovecot verify nothing here either; SPF, DKIM and DMARC would
# ask the machine's resolver about bench.test.
[verify]
spf = "off"
dkim = false
dmarc = "off"

[limits]
# room for the $IDLE_CONNS IDLE connections, all from 127.0.0.1
max_connections = $((IDLE_CONNS + 1000))
max_connections_per_ip = $((IDLE_CONNS + 1000))

$STORE_SECTION
EOF

start_postamt() {
  : >"$T/postamt/stdout"
  "$POSTAMT" serve --config "$T/postamt/postamt.toml" >"$T/postamt/stdout" 2>>"$T/postamt/stderr" &
  POSTAMT_PID=$!
  wait_ready "$POSTAMT_PID" "$T/postamt"
}
POSTAMT_STOP_NOTE=""
stop_postamt() {
  local t0 t1
  t0=$(date +%s.%N)
  kill -TERM "$POSTAMT_PID"
  for _ in $(seq 1 200); do kill -0 "$POSTAMT_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$POSTAMT_PID" 2>/dev/null; then
    POSTAMT_STOP_NOTE="$POSTAMT_STOP_NOTE postamt did not stop within 20 s of SIGTERM ($1), killed;"
    kill -KILL "$POSTAMT_PID"
  fi
  wait "$POSTAMT_PID" 2>/dev/null || true
  t1=$(date +%s.%N)
  echo "postamt stopped ($1) in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}') s"
  POSTAMT_PID=""
}

log "postamt: start; cold SELECT + $ROUNDS warm rounds on $N_BIG messages"
start_postamt
P_RSS_START=$(rss_kb "$POSTAMT_PID")
P_SEL=$($IMAPC select "$P_IMAP" "$USER_BIG" "$PASS" "$ROUNDS" "$PAUSE"); echo "$P_SEL" | sed 's/^/postamt /'
log "postamt: FETCH (FLAGS ENVELOPE) and UID FETCH BODY.PEEK[] on $N messages (warm-up + $ROUNDS rounds)"
P_FET=$($IMAPC fetch "$P_IMAP" "$USER_A" "$PASS" "$ROUNDS" "$SIZE"); echo "$P_FET" | sed 's/^/postamt /'
P_RSS_AFTER=$(rss_kb "$POSTAMT_PID")
echo "postamt RSS: $(mb "$P_RSS_START") MB right after start, $(mb "$P_RSS_AFTER") MB after the SELECT/FETCH rounds"
stop_postamt "after the SELECT/FETCH rounds"

log "postamt (restarted): delivery-to-IDLE latency, $LAT_N deliveries over SMTP, then $LAT_N over LMTP"
start_postamt
P_LAT=$($IMAPC latency "$P_IMAP" "$USER_LAT" "$PASS" "$P_SMTP" smtp "$LAT_N" "$LAT_SIZE" 0.02); echo "$P_LAT" | sed 's/^/postamt smtp /' | cut -c1-400
P_LATL=$($IMAPC latency "$P_IMAP" "$USER_LAT" "$PASS" "$P_LMTP" lmtp "$LAT_N" "$LAT_SIZE" 0.02); echo "$P_LATL" | sed 's/^/postamt lmtp /' | cut -c1-400
P_LATX=""
if [ "$NODES" = 2 ]; then
  # Node B on the same schema: IDLE there, deliveries over SMTP to node A.
  P2_IMAP=$(free_port); P2_SMTP=$(free_port); P2_LMTP=$(free_port)
  mkdir -p "$T/postamt2/data"
  sed -e "s|$T/postamt/data|$T/postamt2/data|" -e "s|:$P_IMAP\"|:$P2_IMAP\"|" -e "s|:$P_SMTP\"|:$P2_SMTP\"|" \
      -e "s|:$P_LMTP\"|:$P2_LMTP\"|" -e 's|^node = "a"|node = "b"|' "$T/postamt/postamt.toml" >"$T/postamt2/postamt.toml"
  "$POSTAMT" serve --config "$T/postamt2/postamt.toml" >"$T/postamt2/stdout" 2>>"$T/postamt2/stderr" &
  POSTAMT2_PID=$!
  wait_ready "$POSTAMT2_PID" "$T/postamt2"
  log "postamt: delivery over SMTP to node A -> EXISTS in IDLE on node B, $LAT_N deliveries"
  P_LATX=$($IMAPC latency "$P2_IMAP" "$USER_LAT" "$PASS" "$P_SMTP" smtp "$LAT_N" "$LAT_SIZE" 0.02); echo "$P_LATX" | sed 's/^/postamt a->b /' | cut -c1-400
  kill -TERM "$POSTAMT2_PID"; wait "$POSTAMT2_PID" 2>/dev/null || true
fi
log "postamt: $IDLE_CONNS connections in IDLE (LOGIN, SELECT INBOX, IDLE; $IDLE_CONCURRENCY in flight)"
P_IDLE=$($IMAPC idle "$P_IMAP" "$USER_IDLE" "$PASS" "$IDLE_CONNS" single "$POSTAMT_PID"); echo "$P_IDLE" | sed 's/^/postamt /'
stop_postamt "after the IDLE connections were closed"

# -------------------------------------------------------------- Dovecot ----
D_IMAP=$(free_port); D_LMTP=$(free_port)
for u in "$USER_BIG" "$USER_A" "$USER_LAT" "$USER_IDLE"; do echo "$u:{PLAIN}$PASS"; done >"$T/dovecot/passwd"
# Dovecot's defaults (lib.sh) and the limits that would otherwise stop
# $IDLE_CONNS concurrent IMAP sessions of one user from one IP.
{
dovecot_conf imapbench "imap lmtp" "$T/dovecot/home/%n"
cat <<EOF
# limits for the $IDLE_CONNS IDLE sessions (defaults: 1000, 1024, 10)
default_client_limit = $((IDLE_CONNS + 1000))
protocol imap {
  mail_max_userip_connections = $((IDLE_CONNS + 1000))
}
service imap {
  process_limit = $((IDLE_CONNS + 1000))
}
service auth {
  # one connection per login process (imap-login below) and per lmtp process
  client_limit = $((IDLE_CONNS + 2000))
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $D_IMAP
  }
  inet_listener imaps {
    port = 0
  }
  # high-security mode (service_count = 1, the default): one short-lived
  # process per connection until it has logged in; the session's imap
  # process then owns the socket (no SSL to proxy)
  process_limit = 1024
}
EOF
dovecot_listener lmtp lmtp "$D_LMTP"
} >"$DOVECOT_CONF"
start_dovecot "$D_IMAP" "$D_LMTP"
D_MASTER=$(cat "$T/dovecot/run/master.pid")

log "Dovecot: first SELECT (builds the index) + $ROUNDS warm rounds on $N_BIG messages"
D_SEL=$($IMAPC select "$D_IMAP" "$USER_BIG" "$PASS" "$ROUNDS" "$PAUSE"); echo "$D_SEL" | sed 's/^/Dovecot /'
log "Dovecot: FETCH (FLAGS ENVELOPE) and UID FETCH BODY.PEEK[] on $N messages (warm-up + $ROUNDS rounds)"
D_FET=$($IMAPC fetch "$D_IMAP" "$USER_A" "$PASS" "$ROUNDS" "$SIZE"); echo "$D_FET" | sed 's/^/Dovecot /'
log "Dovecot: delivery-to-IDLE latency, $LAT_N deliveries over LMTP"
D_LAT=$($IMAPC latency "$D_IMAP" "$USER_LAT" "$PASS" "$D_LMTP" lmtp "$LAT_N" "$LAT_SIZE" 0.02); echo "$D_LAT" | sed 's/^/Dovecot lmtp /' | cut -c1-400
log "Dovecot: $IDLE_CONNS connections in IDLE (LOGIN, SELECT INBOX, IDLE; $IDLE_CONCURRENCY in flight)"
D_IDLE=$($IMAPC idle "$D_IMAP" "$USER_IDLE" "$PASS" "$IDLE_CONNS" tree "$D_MASTER"); echo "$D_IDLE" | sed 's/^/Dovecot /'

# ----------------------------------------------------------------- logs ----
echo
P_ERR=$(grep -E 'WARN|ERROR|panic' "$T/postamt/stderr" | sed 's/\x1b\[[0-9;]*m//g' || true)
if [ -n "$P_ERR" ]; then
  echo "postamt log: $(wc -l <<<"$P_ERR") WARN/ERROR/panic lines; distinct messages:"
  sed -E 's/^[^ ]+ +//; s/peer=[^ ]+//; s/[0-9]+/N/g' <<<"$P_ERR" | sort | uniq -c | sort -rn | head -10
else
  echo "postamt log: no WARN/ERROR/panic lines ($(wc -l <"$T/postamt/stderr") lines)"
fi
D_ERR=$(grep -iE 'error|fatal|panic|warning' "$T/dovecot/dovecot.log" || true)
if [ -n "$D_ERR" ]; then
  echo "Dovecot log: $(wc -l <<<"$D_ERR") error/warning lines; distinct messages:"
  sed -E 's/^[A-Z][a-z]{2} [0-9 ]+ [0-9:]+ //; s/<[^>]*>//g; s/[0-9]+/N/g' <<<"$D_ERR" | sort | uniq -c | sort -rn | head -10
else
  echo "Dovecot log: no error/warning lines"
fi
[ -n "$POSTAMT_STOP_NOTE" ] && echo "NOTE:$POSTAMT_STOP_NOTE"

# -------------------------------------------------------------- summary ----
cold()  { grep '^select cold' <<<"$1" | fld "$2"; }
warm()  { grep '^select warm' <<<"$1" | fld "$2"; }
frnd()  { grep '^fetch round' <<<"$1" | fld "$2"; }
lat()   { grep '^latency n=' <<<"$1" | fld "$2"; }
idle()  { grep "^idle $2 " <<<"$1" | fld "$3"; }

PC=$(cold "$P_SEL" select_ms);                DC=$(cold "$D_SEL" select_ms)
PW=$(warm "$P_SEL" select_ms | median);       DW=$(warm "$D_SEL" select_ms | median)
PF=$(warm "$P_SEL" fetch_flags_ms | median);  DF=$(warm "$D_SEL" fetch_flags_ms | median)
again() { grep '^select again' <<<"$1" | fld select_ms; }
PA=$(again "$P_SEL" | median);                DA=$(again "$D_SEL" | median)
PFC=$(cold "$P_SEL" fetch_flags_ms);          DFC=$(cold "$D_SEL" fetch_flags_ms)
PL=$(warm "$P_SEL" login_ms | median);        DL=$(warm "$D_SEL" login_ms | median)
PBX=$(cold "$P_SEL" exists);                  DBX=$(cold "$D_SEL" exists)
PE=$(frnd "$P_FET" env_msgs_s | median);      DE=$(frnd "$D_FET" env_msgs_s | median)
PEM=$(frnd "$P_FET" env_mb_s | median);       DEM=$(frnd "$D_FET" env_mb_s | median)
PB=$(frnd "$P_FET" body_msgs_s | median);     DB_=$(frnd "$D_FET" body_msgs_s | median)
PBM=$(frnd "$P_FET" body_mb_s | median);      DBM=$(frnd "$D_FET" body_mb_s | median)
PB2=$(frnd "$P_FET" body2_msgs_s | median);   DB2=$(frnd "$D_FET" body2_msgs_s | median)
POC=$(frnd "$P_FET" body_octets | head -1);   DOC=$(frnd "$D_FET" body_octets | head -1)
PX=$(frnd "$P_FET" exists | head -1);         DX=$(frnd "$D_FET" exists | head -1)
PLA50=$(lat "$P_LAT" ack_p50_ms);  PLA99=$(lat "$P_LAT" ack_p99_ms)
PLD50=$(lat "$P_LAT" data_p50_ms); PLD99=$(lat "$P_LAT" data_p99_ms); PLMISS=$(lat "$P_LAT" missed)
PMA50=$(lat "$P_LATL" ack_p50_ms); PMA99=$(lat "$P_LATL" ack_p99_ms)
PMD50=$(lat "$P_LATL" data_p50_ms); PMD99=$(lat "$P_LATL" data_p99_ms); PMMISS=$(lat "$P_LATL" missed)
DLA50=$(lat "$D_LAT" ack_p50_ms);  DLA99=$(lat "$D_LAT" ack_p99_ms)
DLD50=$(lat "$D_LAT" data_p50_ms); DLD99=$(lat "$D_LAT" data_p99_ms); DLMISS=$(lat "$D_LAT" missed)
PIB=$(idle "$P_IDLE" before rss_kb); PIA=$(idle "$P_IDLE" after rss_kb); PIP=$(idle "$P_IDLE" after pss_kb)
PIN=$(idle "$P_IDLE" after conns);   PIZ=$(idle "$P_IDLE" closed rss_kb); PIR=$(idle "$P_IDLE" after ramp_s)
DIB=$(idle "$D_IDLE" before rss_kb); DIA=$(idle "$D_IDLE" after rss_kb); DIP=$(idle "$D_IDLE" after pss_kb)
DIBP=$(idle "$D_IDLE" before pss_kb)
DIN=$(idle "$D_IDLE" after conns);   DIPR=$(idle "$D_IDLE" after procs); DIR_=$(idle "$D_IDLE" after ramp_s)
PIX=$(idle "$P_IDLE" after closed); DIX=$(idle "$D_IDLE" after closed)
PIE=$(idle "$P_IDLE" after errors); DIE=$(idle "$D_IDLE" after errors)
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {if (n+0 == 0) print "n/a"; else printf "%.1f", (b-a)/n}'; }

[ "$PBX" = "$DBX" ] && [ "$PX" = "$DX" ] && [ "$POC" = "$DOC" ] \
  || echo "WARNING: mailboxes differ: postamt $PBX / $PX msgs, $POC octets; Dovecot $DBX / $DX msgs, $DOC octets"

cat <<EOF

================================ summary ================================
machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), ulimit -n $NOFILE
Dovecot: $DOVECOT_VERSION    date: $(date -u '+%Y-%m-%d %H:%M UTC')    postamt: $REV
binary: $BIN_ID
sizes: big mailbox $N_BIG x ~$SIZE_BIG B; fetch mailbox $N x ~$SIZE B ($POC octets); $ROUNDS warm rounds (new session each); IDLE_CONNS=$IDLE_CONNS; LAT_N=$LAT_N

| benchmark                                          | postamt    | Dovecot    | postamt/Dovecot |
|----------------------------------------------------|------------|------------|-----------------|
| SELECT $N_BIG msgs, cold (ms)                      | $PC | $DC | $(ratio "$PC" "$DC") |
| SELECT $N_BIG msgs, warm, median (ms)              | $PW | $DW | $(ratio "$PW" "$DW") |
| SELECT again in one session (UNSELECT first), median (ms) | $PA | $DA | $(ratio "$PA" "$DA") |
| FETCH 1:* (FLAGS) $N_BIG msgs, warm, median (ms)   | $PF | $DF | $(ratio "$PF" "$DF") |
| FETCH 1:* (FLAGS) right after the cold SELECT (ms) | $PFC | $DFC | |
| LOGIN, median (ms; postamt Argon2id, Dovecot PLAIN) | $PL | $DL | |
| FETCH 1:* (FLAGS ENVELOPE) $N msgs (msg/s)         | $PE | $DE | $(ratio "$PE" "$DE") |
| FETCH 1:* (FLAGS ENVELOPE) (MB/s of response)      | $PEM | $DEM | |
| UID FETCH 1:* BODY.PEEK[] $N msgs (msg/s)          | $PB | $DB_ | $(ratio "$PB" "$DB_") |
| UID FETCH 1:* BODY.PEEK[] (MB/s of response)       | $PBM | $DBM | |
| the same again in the same session (msg/s)         | $PB2 | $DB2 | $(ratio "$PB2" "$DB2") |
| IDLE connections held                              | $PIN | $DIN | |
| RSS before them (MB)                               | $(mb "$PIB") | $(mb "$DIB") | |
| RSS with them (MB; Dovecot: sum over $DIPR procs)  | $(mb "$PIA") | $(mb "$DIA") | |
| PSS with them (MB)                                 | $(mb "$PIP") | $(mb "$DIP") | |
| RSS per IDLE connection (KB)                       | $(per_conn "$PIB" "$PIA" "$PIN") | $(per_conn "$DIB" "$DIA" "$DIN") | |
| PSS per IDLE connection (KB)                       | | $(per_conn "$DIBP" "$DIP" "$DIN") | |
| time to open them (s)                              | $PIR | $DIR_ | |
| postamt RSS after they closed (MB)                 | $(mb "$PIZ") | | |
| delivery ack -> EXISTS p50 / p99 (ms)              | $PLA50 / $PLA99 (SMTP) | $DLA50 / $DLA99 (LMTP) | |
| end of DATA sent -> EXISTS p50 / p99 (ms)          | $PLD50 / $PLD99 (SMTP) | $DLD50 / $DLD99 (LMTP) | |
| postamt over LMTP: ack / end of DATA -> EXISTS p50 (p99) | $PMA50 ($PMA99) / $PMD50 ($PMD99) | | |
| deliveries without EXISTS within 10 s              | $PLMISS (SMTP), $PMMISS (LMTP) | $DLMISS | |

raw values (ms unless noted):
  postamt cold SELECT / warm SELECTs:   $PC / $(warm "$P_SEL" select_ms | raw)
  Dovecot cold SELECT / warm SELECTs:   $DC / $(warm "$D_SEL" select_ms | raw)
  postamt SELECT again (one session):   $(again "$P_SEL" | raw)
  Dovecot SELECT again (one session):   $(again "$D_SEL" | raw)
  postamt FETCH FLAGS cold / warm:      $PFC / $(warm "$P_SEL" fetch_flags_ms | raw)
  Dovecot FETCH FLAGS cold / warm:      $DFC / $(warm "$D_SEL" fetch_flags_ms | raw)
  postamt FETCH ENVELOPE (ms):          $(frnd "$P_FET" env_ms | raw)   warm-up $(grep '^fetch warmup' <<<"$P_FET" | fld env_ms)
  Dovecot FETCH ENVELOPE (ms):          $(frnd "$D_FET" env_ms | raw)   warm-up $(grep '^fetch warmup' <<<"$D_FET" | fld env_ms)
  postamt BODY.PEEK[] (ms):             $(frnd "$P_FET" body_ms | raw)   warm-up $(grep '^fetch warmup' <<<"$P_FET" | fld body_ms)
  Dovecot BODY.PEEK[] (ms):             $(frnd "$D_FET" body_ms | raw)   warm-up $(grep '^fetch warmup' <<<"$D_FET" | fld body_ms)
  postamt BODY.PEEK[] again (ms):       $(frnd "$P_FET" body2_ms | raw)
  Dovecot BODY.PEEK[] again (ms):       $(frnd "$D_FET" body2_ms | raw)
  client CPU during ENVELOPE / BODY.PEEK[] rounds, postamt: $(frnd "$P_FET" client_cpu_env_ms | raw) / $(frnd "$P_FET" client_cpu_body_ms | raw)
  client CPU during ENVELOPE / BODY.PEEK[] rounds, Dovecot: $(frnd "$D_FET" client_cpu_env_ms | raw) / $(frnd "$D_FET" client_cpu_body_ms | raw)
  IDLE conns: postamt $PIN/$IDLE_CONNS (closed by server: $PIX, errors: $PIE), Dovecot $DIN/$IDLE_CONNS (closed: $DIX, errors: $DIE)

targets:
  cold SELECT on $N_BIG < 50 ms:                     $PC ms -> $(yes_no "$PC < 50")
  warm SELECT no slower than Dovecot:                $PW vs $DW ms -> $(yes_no "$PW <= $DW")
  FETCH 1:* (FLAGS) on $N_BIG in half Dovecot's time: $PF vs $DF ms -> $(yes_no "$PF <= 0.5 * $DF")
  FETCH (FLAGS ENVELOPE) on $N >= 2x Dovecot:        $(ratio "$PE" "$DE")x -> $(yes_no "$PE >= 2 * $DE")
  UID FETCH BODY.PEEK[] on $N >= 2x Dovecot:         $(ratio "$PB" "$DB_")x -> $(yes_no "$PB >= 2 * $DB_")
  10,000 IDLE connections < 200 MB postamt RSS:      $(mb "$PIA") MB with $PIN connections -> $(yes_no "$PIA < 200 * 1024 && $PIN >= 10000")$(if [ "$PIN" -lt 10000 ]; then echo " (only $PIN connections: not measured at 10,000)"; fi)
  delivery-to-IDLE p50 < 10 ms (SMTP ack -> EXISTS): $PLA50 ms -> $(yes_no "$PLA50 < 10")
EOF
if [ -n "$P_LATX" ]; then
  PXA50=$(lat "$P_LATX" ack_p50_ms); PXA99=$(lat "$P_LATX" ack_p99_ms); PXMISS=$(lat "$P_LATX" missed)
  echo "  two nodes: SMTP on A ack -> EXISTS in IDLE on B p50 / p99: $PXA50 / $PXA99 ms, $PXMISS without EXISTS within 10 s"
  echo "  node A -> EXISTS on node B p50 < 20 ms:            $PXA50 ms -> $(yes_no "$PXA50 < 20")"
fi
if [ "$STORE" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
  psql -X -q -d "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
fi
