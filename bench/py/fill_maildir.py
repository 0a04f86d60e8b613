# fill_maildir.py DIR N SIZE ADDRESS: a Maildir whose cur/ files are stored
# with LF line ends (as Dovecot stores them), named with S= (file size) and
# W= (CRLF size) the way Dovecot's own deliveries name them, no flags (":2,").
# No index: Dovecot builds it on first use.
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from msg import delivered
d, n, size, address = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
total = 0
for i in range(n):
    crlf = delivered(i, size, address)
    lf = crlf.replace(b"\r\n", b"\n")
    name = f"{1700000000 + i}.M{i}P1.bench,S={len(lf)},W={len(crlf)}:2,"
    with open(os.path.join(d, "cur", name), "wb") as f:
        f.write(lf)
    total += len(crlf)
print(f"maildir {d}: {n} messages, {total} octets as sent (CRLF)")
