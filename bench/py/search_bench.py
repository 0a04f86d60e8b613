# The SEARCH benchmark's messages and client (standard library only), used by
# bench/search_vs_dovecot.sh. Subcommands:
#
#   gen DIR N_SMALL N_BIG SIZE
#       Writes DIR/small.msgs and DIR/big.msgs (records: 4-byte big-endian
#       length, then the message, CRLF line ends, ~SIZE bytes each) and
#       DIR/truth.json: for every query of QUERIES, the UIDs (1-based append
#       order) of the messages that match it, computed from the bytes.
#   fill PORT USER PASS FILE BATCH
#       LOGIN, then MULTIAPPEND (RFC 3502) of the messages of FILE into INBOX,
#       BATCH per command, literals as LITERAL+ when the server offers it;
#       checks that APPENDUID gives UIDs 1..N in order. Prints one "fill" line.
#   wait_index DB T_LAST PID TIMEOUT
#       postamt only: polls `SELECT count(*) FROM blobs WHERE indexed = 0` in
#       DB (read-only) until 0; prints the time from T_LAST (epoch seconds of
#       the last APPEND's tagged OK) and the CPU seconds of PID meanwhile.
#   search PORT USER PASS ROUNDS OUTDIR NAME BOX QUERY
#       One warm-up session, then ROUNDS sessions, each: connect, LOGIN,
#       EXAMINE INBOX, QUERY timed from sending it to its tagged OK, LOGOUT.
#       The UIDs of the last round go to OUTDIR/NAME.uids; prints one
#       "search" line.
#
# Every socket operation has a timeout (SEARCH_TIMEOUT, default 300 s).
import json, os, random, re, socket, struct, sys, time

TIMEOUT = float(os.environ.get("SEARCH_TIMEOUT", "300"))
now = time.perf_counter

# The planted words: how many messages of a mailbox carry each.
NEEDLE = "zyxwvneedle"        # exactly 10 messages (body)
RARE = "raregem"              # 1 % of the messages (body)
COMMON = "commonword"         # each message with probability 1/2 (body)
SUBJ = "needle"               # exactly 7 subjects
NOMATCH = "qxjzvnomatch"      # nowhere
BANNED = (NEEDLE, RARE, COMMON, SUBJ, NOMATCH)

# (name, mailbox, IMAP command): what is measured, in this order.
QUERIES = [
    ("small_subject_needle",   "small", f"UID SEARCH SUBJECT {SUBJ}"),
    ("small_body_zyxwvneedle", "small", f"UID SEARCH BODY {NEEDLE}"),
    ("small_body_raregem",     "small", f"UID SEARCH BODY {RARE}"),
    ("small_body_commonword",  "small", f"UID SEARCH BODY {COMMON}"),
    ("big_subject_needle",     "big",   f"UID SEARCH SUBJECT {SUBJ}"),
    ("big_body_zyxwvneedle",   "big",   f"UID SEARCH BODY {NEEDLE}"),
    ("big_body_raregem",       "big",   f"UID SEARCH BODY {RARE}"),
    ("big_body_commonword",    "big",   f"UID SEARCH BODY {COMMON}"),
    ("big_text_zyxwvneedle",   "big",   f"UID SEARCH TEXT {NEEDLE}"),
    ("big_body_nomatch",       "big",   f"UID SEARCH BODY {NOMATCH}"),
]


def vocabulary(n=5000, seed=16):
    """n pronounceable made-up words (3+ letters), none containing a planted word."""
    r = random.Random(seed)
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t",
              "v", "w", "y", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ie", "oo", "ou"]
    codas = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]
    words = set()
    while len(words) < n:
        w = "".join(r.choice(onsets) + r.choice(vowels) + r.choice(codas)
                    for _ in range(r.choice((1, 2, 2, 3, 3, 4))))
        if len(w) >= 3 and not any(b in w for b in BANNED):
            words.add(w)
    return sorted(words)


def make_box(n, size, seed, address, vocab):
    """Yields (uid, message bytes) for a mailbox of n messages."""
    r = random.Random(seed)
    needle_at = set(r.sample(range(n), 10))
    rare_at = set(r.sample(range(n), max(1, n // 100)))
    subj_at = set(r.sample(range(n), 7))
    for i in range(n):
        uid = i + 1
        subj = r.choices(vocab, k=r.randint(3, 6))
        if i in subj_at:
            subj.insert(r.randrange(len(subj) + 1), SUBJ)
        first, last = r.choice(vocab), r.choice(vocab)
        head = (f"From: {first.capitalize()} {last.capitalize()} <{first}.{last}@remote.test>\r\n"
                f"To: {address}\r\n"
                f"Subject: {uid} {' '.join(subj)}\r\n"
                f"Message-ID: <s{seed}.{uid}@remote.test>\r\n"
                f"Date: Sat, 05 Dec 2026 12:00:00 +0000\r\n"
                f"MIME-Version: 1.0\r\n"
                f"Content-Type: text/plain; charset=us-ascii\r\n"
                f"\r\n").encode()
        words = r.choices(vocab, k=size // 5)  # more than fit; cut below
        planted = ([NEEDLE] if i in needle_at else []) + ([RARE] if i in rare_at else []) \
            + ([COMMON] if r.random() < 0.5 else [])
        for w in planted:  # early enough to survive the cut
            words.insert(r.randrange(40), w)
        body = bytearray()
        line = ""
        budget = size - len(head)
        for w in words:
            if len(line) + 1 + len(w) > 72:
                if len(body) + len(line) + 2 > budget:
                    break
                body += line.encode() + b"\r\n"
                line = w
            else:
                line = f"{line} {w}" if line else w
        yield uid, head + bytes(body)


def cmd_gen(d, n_small, n_big, size):
    vocab = vocabulary()
    truth = {}
    for box, n, seed, addr in (("small", n_small, 1001, "s10k@bench.test"),
                               ("big", n_big, 1002, "s100k@bench.test")):
        qs = [(name, c) for name, b, c in QUERIES if b == box]
        hits = {name: [] for name, _ in qs}
        total = 0
        with open(os.path.join(d, f"{box}.msgs"), "wb") as f:
            for uid, m in make_box(n, size, seed, addr, vocab):
                f.write(struct.pack(">I", len(m)) + m)
                total += len(m)
                h, b = m.lower().split(b"\r\n\r\n", 1)
                subject = re.search(rb"^subject:(.*)$", h, re.M).group(1)
                for name, c in qs:
                    key, word = c.split()[2], c.split()[3].encode()
                    where = {"SUBJECT": subject, "BODY": b, "TEXT": h + b"\r\n\r\n" + b}[key]
                    if word in where:
                        hits[name].append(uid)
        truth.update(hits)
        print(f"gen {box} messages={n} octets={total} avg={total / n:.0f} vocabulary={len(vocab)} "
              + " ".join(f"{name}={len(v)}" for name, v in hits.items()), flush=True)
    with open(os.path.join(d, "truth.json"), "w") as f:
        json.dump(truth, f)


class Imap:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.n = 0
        g = self.line()
        if not g.startswith(b"* OK"):
            raise RuntimeError(f"greeting {g!r}")

    def line(self):
        while True:
            e = self.buf.find(b"\r\n")
            if e >= 0:
                l = bytes(self.buf[:e])
                del self.buf[: e + 2]
                return l
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError("server closed the connection")
            self.buf += d

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def send(self, data):
        self.s.sendall(data)

    def wait(self, tag, what):
        """Lines up to the tagged reply; (tagged line, untagged lines)."""
        lines = []
        while True:
            l = self.line()
            if l.startswith(tag + b" "):
                if not l.startswith(tag + b" OK"):
                    raise RuntimeError(f"{what!r}: {l[:300]!r}")
                return l, lines
            lines.append(l)

    def cmd(self, text):
        t = self.tag()
        self.send(t + b" " + text.encode() + b"\r\n")
        return self.wait(t, text)

    def login(self, user, pw):
        self.cmd(f'LOGIN "{user}" "{pw}"')

    def logout(self):
        try:
            self.cmd("LOGOUT")
        except (EOFError, OSError):
            pass
        self.s.close()


def read_msgs(path):
    with open(path, "rb") as f:
        data = f.read()
    i, out = 0, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def cmd_fill(port, user, pw, path, batch):
    msgs = read_msgs(path)
    c = Imap(port)
    _, lines = c.cmd("CAPABILITY")
    caps = b" ".join(lines).upper().split()
    literal_plus = b"LITERAL+" in caps
    c.login(user, pw)
    t0 = time.time()
    expect = 1
    for start in range(0, len(msgs), batch):
        chunk = msgs[start : start + batch]
        t = c.tag()
        if literal_plus:
            out = bytearray(t + b" APPEND INBOX")
            for m in chunk:
                out += b" {%d+}\r\n" % len(m) + m
            c.send(bytes(out) + b"\r\n")
        else:  # synchronizing literals: wait for "+" before each
            head = t + b" APPEND INBOX"
            for m in chunk:
                c.send(head + b" {%d}\r\n" % len(m))
                l = c.line()
                if not l.startswith(b"+"):
                    raise RuntimeError(f"APPEND: {l!r}")
                c.send(m)
                head = b""
            c.send(b"\r\n")
        tagged, _ = c.wait(t, "APPEND")
        m = re.search(rb"\[APPENDUID \d+ ([0-9:,]+)\]", tagged)
        want = f"{expect}:{expect + len(chunk) - 1}" if len(chunk) > 1 else f"{expect}"
        if not m or m.group(1).decode() != want:
            raise RuntimeError(f"APPEND of messages {expect}..: expected APPENDUID {want}, got {tagged[:200]!r}")
        expect += len(chunk)
    t_last = time.time()
    c.logout()
    octets = sum(len(m) for m in msgs)
    print(f"fill user={user} messages={len(msgs)} octets={octets} batch={batch} literal_plus={int(literal_plus)} "
          f"seconds={t_last - t0:.1f} msg_s={len(msgs) / (t_last - t0):.0f} t_last={t_last:.3f}", flush=True)


def proc_cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cmd_wait_index(db, t_last, pid, limit):
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    cpu0 = proc_cpu_s(pid)
    t_first = time.time()
    first = None
    while True:
        left = con.execute("SELECT count(*) FROM blobs WHERE indexed = 0").fetchone()[0]
        if first is None:
            first = left
        if left == 0:
            break
        if time.time() - t_first > limit:
            print(f"index timeout left={left} after_s={time.time() - t_last:.1f}", flush=True)
            sys.exit(1)
        time.sleep(0.1)
    t = time.time()
    total = con.execute("SELECT count(*) FROM blobs").fetchone()[0]
    print(f"index backlog_when_polled={first} polled_at_s={t_first - t_last:.1f} blobs={total} "
          f"caught_up_s={t - t_last:.1f} postamt_cpu_s_meanwhile={proc_cpu_s(pid) - cpu0:.1f}", flush=True)


def cmd_search(port, user, pw, rounds, outdir, name, box, query):
    def session():
        c = Imap(port)
        c.login(user, pw)
        c.cmd("EXAMINE INBOX")
        t = c.tag()
        t0 = now()
        c.send(t + b" " + query.encode() + b"\r\n")
        _, lines = c.wait(t, query)
        ms = (now() - t0) * 1000
        c.logout()
        uids = []
        for l in lines:
            if l.startswith(b"* SEARCH"):
                uids += [int(x) for x in l.split()[2:]]
        return ms, uids

    warm, first = session()
    times, last = [], None
    for _ in range(rounds):
        ms, uids = session()
        times.append(ms)
        if last is not None and uids != last:
            print(f"search {name} WARNING: rounds answered differently", flush=True)
        last = uids
    if first != last:
        print(f"search {name} WARNING: warm-up answered differently from the rounds", flush=True)
    with open(os.path.join(outdir, f"{name}.uids"), "w") as f:
        f.write(" ".join(map(str, last)) + "\n")
    s = sorted(times)
    print(f"search {name} box={box} hits={len(last)} warmup_ms={warm:.2f} median_ms={s[len(s) // 2]:.2f} "
          f"min_ms={s[0]:.2f} max_ms={s[-1]:.2f} rounds_ms={','.join(f'{x:.2f}' for x in times)}", flush=True)


def main():
    a = sys.argv[1:]
    if a[0] == "gen":
        cmd_gen(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif a[0] == "fill":
        cmd_fill(int(a[1]), a[2], a[3], a[4], int(a[5]))
    elif a[0] == "wait_index":
        cmd_wait_index(a[1], float(a[2]), int(a[3]), float(a[4]))
    elif a[0] == "search":
        cmd_search(int(a[1]), a[2], a[3], int(a[4]), a[5], a[6], a[7], a[8])
    elif a[0] == "queries":
        for name, box, c in QUERIES:
            print(f"{name}\t{box}\t{c}")
    else:
        sys.exit(f"unknown subcommand {a[0]}")


if __name__ == "__main__":
    main()
