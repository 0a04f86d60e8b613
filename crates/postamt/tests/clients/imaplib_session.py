"""Python's imaplib against postamt's IMAP: LOGIN, AUTHENTICATE PLAIN,
STARTTLS, IMAP4_SSL, SELECT/EXAMINE, APPEND, FETCH (every item), STORE,
SEARCH, COPY, MOVE, UID EXPUNGE, IDLE-free NOOP updates, LIST/LSUB/STATUS,
CREATE/RENAME/DELETE, NAMESPACE, ID, CLOSE, LOGOUT.

usage: imaplib_session.py HOST IMAP_PORT IMAPS_PORT USER PASSWORD
Exits non-zero (assertion) on the first difference.
"""
import email
import imaplib
import re
import ssl
import sys

host, port, sport, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def ok(r, what=""):
    typ, data = r
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


MSG = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\n"
    b"To: \"Smith, Alice\" <alice@example.test>, bob@example.test\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
    b"Date: Thu, 26 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus Berlin.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf; name=\"a.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1--\r\n"
)

# 1. Plain connection, LOGIN, NAMESPACE, ID, APPEND, SELECT.
M = imaplib.IMAP4(host, port)
assert "IDLE" in M.capabilities and "UIDPLUS" in M.capabilities, M.capabilities
ok(M.login(user, pw), "login")
ns = ok(M.namespace(), "namespace")
assert ns[0] == b'(("" "/")) NIL NIL', ns
typ, data = M.xatom("ID", '("name" "imaplib")')
assert typ == "OK"
data = ok(M.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(1795700000), MSG), "append")
m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
assert m, data
uid = int(m.group(2))
data = ok(M.select("INBOX"), "select")
count = int(data[0])
assert count >= 1

# 2. FETCH: the whole message is byte-identical; sections; structure.
typ, data = M.uid("FETCH", str(uid), "(RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[])")
assert typ == "OK", data
meta, body = data[0]
assert body == MSG, (body, MSG)
assert b"RFC822.SIZE %d" % len(MSG) in meta, meta
assert b"\\Flagged" in meta and b"\\Seen" not in meta, meta
assert imaplib.Internaldate2tuple(meta) is not None, meta
typ, data = M.uid("FETCH", str(uid), "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject)])")
assert typ == "OK", data
assert data[0][1] == "Grüße aus Berlin.".encode(), data[0]
assert data[1][1].startswith(b"Content-Type: application/pdf"), data[1]
assert data[2][1] == b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n\r\n", data[2]
typ, data = M.uid("FETCH", str(uid), "(ENVELOPE BODYSTRUCTURE)")
line = data[0]
assert b'"=?utf-8?b?R3LDvMOfZQ==?="' in line, line
assert b'(("Smith, Alice" NIL "alice" "example.test")(NIL NIL "bob" "example.test"))' in line, line
assert b'"mixed" ("boundary" "b1")' in line, line
assert b'("attachment" ("filename" "a.pdf"))' in line, line
# The message parses back with the email package.
typ, data = M.uid("FETCH", str(uid), "(RFC822)")
parsed = email.message_from_bytes(data[0][1])
assert parsed.get_content_type() == "multipart/mixed"
typ, data = M.uid("FETCH", str(uid), "(FLAGS)")
assert b"\\Seen" in data[0], data  # RFC822 set \Seen

# 3. STORE, SEARCH, COPY, MOVE, UID EXPUNGE.
ok(M.uid("STORE", str(uid), "+FLAGS", "(\\Answered $Label1)"), "store")
typ, data = M.uid("SEARCH", None, "KEYWORD", "$Label1")
assert data[0].split() == [str(uid).encode()], data
typ, data = M.search(None, "HEADER", "Message-ID", "m1@example.org")
assert data[0].split(), data
ok(M.create("Archiv/2026"), "create")
ok(M.uid("COPY", str(uid), "Archiv/2026"), "copy")
typ, data = M.response("COPYUID")  # from the tagged OK's response code
assert data and data[0] and data[0].endswith(b" %d 1" % uid), data
typ, data = M.uid("MOVE", str(uid), "Archiv")
assert typ == "OK", data
data = ok(M.status("Archiv", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"), "status")
assert b"MESSAGES 1" in data[0], data
typ, data = M.list('""', "Archiv*")
names = b" ".join(data)
assert b'"Archiv"' in names and b'"Archiv/2026"' in names, data
ok(M.rename("Archiv/2026", "Archiv/Alt"), "rename")
ok(M.subscribe("Archiv/Alt"), "subscribe")
typ, data = M.lsub('""', "Archiv/*")
assert data == [b'() "/" "Archiv/Alt"'], data
ok(M.select("Archiv/Alt"), "select archive")
ok(M.store("1", "+FLAGS", "(\\Deleted)"), "store deleted")
data = ok(M.expunge(), "expunge")
assert data == [b"1"], data
ok(M.close(), "close")
ok(M.delete("Archiv/Alt"), "delete")
M.logout()

# 3b. ENABLE, SORT, THREAD, GETQUOTAROOT, UNSELECT, CHARSET SEARCH, IDLE-free
# NOOP (imaplib's own methods for each).
M = imaplib.IMAP4(host, port)
ok(M.login(user, pw), "login")
ok(M.append("INBOX", None, None, b"Subject: Re: zebra\r\nMessage-ID: <z2@x>\r\nReferences: <z1@x>\r\n\r\nb\r\n"), "append")
ok(M.append("INBOX", None, None, b"Subject: zebra\r\nMessage-ID: <z1@x>\r\n\r\na\r\n"), "append")
typ, data = M.enable("CONDSTORE")
assert typ == "OK", data
ok(M.select("INBOX"), "select")
typ, data = M.sort("(SUBJECT)", "UTF-8", "ALL")
assert typ == "OK" and data[0], data
typ, data = M.thread("REFERENCES", "UTF-8", "SUBJECT", "zebra")
assert typ == "OK" and data[0].count(b"(") == 1, data
typ, data = M.getquotaroot("INBOX")
assert typ == "OK", data
typ, data = M.search("UTF-8", "SUBJECT", "zebra")
assert typ == "OK" and len(data[0].split()) == 2, data
ok(M.noop(), "noop")
ok(M.unselect(), "unselect")
M.logout()

# 4. STARTTLS, then AUTHENTICATE PLAIN.
M = imaplib.IMAP4(host, port)
M.starttls(ssl_context=ctx)
assert "STARTTLS" not in M.capabilities, M.capabilities
ok(M.authenticate("PLAIN", lambda _: f"\0{user}\0{pw}".encode()), "authenticate")
ok(M.select("INBOX", readonly=True), "examine")
typ, data = M.store("1", "+FLAGS", "(\\Seen)")
assert typ == "NO", (typ, data)
M.logout()

# 5. Implicit TLS.
M = imaplib.IMAP4_SSL(host, sport, ssl_context=ctx)
ok(M.login(user, pw), "login over TLS")
data = ok(M.select("Archiv", readonly=True), "examine archive")
assert data == [b"1"], data
M.logout()
print("imaplib: all checks passed")
