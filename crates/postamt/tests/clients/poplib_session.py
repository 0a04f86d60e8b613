"""Python's poplib (a client nobody here wrote) against postamt.

usage: poplib_session.py HOST POP3_PORT POP3S_PORT EXPECTED_DIR
EXPECTED_DIR holds 1.eml, 2.eml, ...: the exact octets RETR must return.
Exits non-zero with a message on the first mismatch.
"""
import base64
import os
import poplib
import ssl
import sys

host, port, sport, expected_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
expected = []
i = 1
while os.path.exists(os.path.join(expected_dir, f"{i}.eml")):
    with open(os.path.join(expected_dir, f"{i}.eml"), "rb") as f:
        expected.append(f.read())
    i += 1

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def body_of(resp):
    # poplib returns lines without CRLF, with byte-stuffing undone.
    return b"".join(l + b"\r\n" for l in resp[1])


# 1. USER/PASS: STAT, LIST, UIDL, TOP, RETR
p = poplib.POP3(host, port, timeout=10)
check(p.getwelcome().startswith(b"+OK"), "greeting")
caps = p.capa()
for c in ["TOP", "UIDL", "USER", "SASL", "STLS", "RESP-CODES"]:
    check(c in caps, f"CAPA lacks {c}: {caps}")
p.user("alice@example.test")
p.pass_("alice-pw")
count, size = p.stat()
check(count == len(expected), f"STAT count {count} != {len(expected)}")
check(size == sum(len(e) for e in expected), f"STAT size {size}")
resp, listing, _ = p.list()
sizes = [int(l.split()[1]) for l in listing]
check(sizes == [len(e) for e in expected], f"LIST sizes {sizes}")
resp, uidls, _ = p.uidl()
check(len(uidls) == len(expected) and len(set(uidls)) == len(uidls), f"UIDL {uidls}")
for n, e in enumerate(expected, 1):
    resp = p.retr(n)
    check(resp[0].startswith(b"+OK"), "RETR status")
    check(body_of(resp) == e, f"RETR {n} octets differ:\n{body_of(resp)!r}\n!=\n{e!r}")
    check(resp[2] >= len(e), "RETR octet count")
    top = p.top(n, 0)
    header_end = e.index(b"\r\n\r\n") + 4
    check(body_of(top) == e[:header_end], f"TOP {n} 0")
single = p.uidl(1)
check(single.split()[2] == uidls[0].split()[1], "UIDL 1")
p.dele(1)
check(p.stat()[0] == len(expected) - 1, "STAT after DELE")
p.rset()
check(p.stat()[0] == len(expected), "STAT after RSET")
p.quit()

# 2. AUTH PLAIN (RFC 5034) with an initial response
p = poplib.POP3(host, port, timeout=10)
ir = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
check(p._shortcmd("AUTH PLAIN " + ir).startswith(b"+OK"), "AUTH PLAIN")
check(p.stat()[0] == len(expected), "STAT after AUTH PLAIN")
p.quit()

# 3. STLS (RFC 2595), then USER/PASS inside TLS
p = poplib.POP3(host, port, timeout=10)
p.stls(context=ctx)
caps = p.capa()
check("STLS" not in caps, "STLS offered again after TLS")
p.user("alice@example.test")
p.pass_("alice-pw")
check(p.stat()[0] == len(expected), "STAT over STLS")
check(body_of(p.retr(1)) == expected[0], "RETR over STLS")
p.quit()

# 4. POP3S (implicit TLS, RFC 8314), DELE takes effect at QUIT
p = poplib.POP3_SSL(host, sport, context=ctx, timeout=10)
p.user("alice@example.test")
p.pass_("alice-pw")
check(body_of(p.retr(len(expected))) == expected[-1], "RETR over POP3S")
p.dele(len(expected))
p.quit()
p = poplib.POP3_SSL(host, sport, context=ctx, timeout=10)
p.user("alice@example.test")
p.pass_("alice-pw")
check(p.stat()[0] == len(expected) - 1, "DELE applied at QUIT")
try:
    p.retr(len(expected))
    check(False, "RETR of a deleted message succeeded")
except poplib.error_proto as e:
    check(str(e).startswith("b'-ERR"), f"error {e}")
p.quit()

# 5. Wrong password: -ERR [AUTH]
p = poplib.POP3(host, port, timeout=10)
p.user("alice@example.test")
try:
    p.pass_("wrong")
    check(False, "wrong password accepted")
except poplib.error_proto as e:
    check("[AUTH]" in str(e), f"no [AUTH] code: {e}")
p.quit()
print("poplib: all checks passed")
