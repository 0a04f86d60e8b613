#!/usr/bin/env python3
"""The signed message and the DNS zone of the SMTP benchmark with SIGNED=1.

Usage: signed_msg.py KEY_PEM PUB_B64 SIZE MSG_OUT ZONE_OUT

Signs the bench message of msg.py (SIZE bytes before the signature) with
the RSA key KEY_PEM (PKCS#1 PEM) through dkimpy: d=remote.test, s=bench,
rsa-sha256, relaxed/relaxed, h=From:To:Subject:Date:Message-ID. Writes it
to MSG_OUT with LF line ends, as smtp-source -F wants them (it sends each
line with CRLF appended; it also appends one empty line at the end, which
relaxed body canonicalization ignores). ZONE_OUT is a zone for
crates/postamt/tests/clients/dns_server.py: SPF allowing 127.0.0.1, the
DKIM key (PUB_B64: SubjectPublicKeyInfo, base64), DMARC p=reject.
"""
import json
import sys

import dkim

from msg import bench_message

key_pem, pub_b64, size, msg_out, zone_out = sys.argv[1:6]
with open(key_pem, "rb") as f:
    key = f.read()
with open(pub_b64) as f:
    pub = "".join(f.read().split())

message = bench_message(1, int(size))
signature = dkim.sign(
    message, b"bench", b"remote.test", key,
    canonicalize=(b"relaxed", b"relaxed"),
    include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"],
)
signed = signature + message
if not dkim.verify(signed, dnsfunc=lambda name, timeout=5: f"v=DKIM1; k=rsa; p={pub}".encode()):
    sys.exit("dkimpy cannot verify its own signature with PUB_B64")
lines = signed.split(b"\r\n")
assert lines[-1] == b"", "the message ends with CRLF"
assert not any(l.startswith(b".") for l in lines)
with open(msg_out, "wb") as f:
    f.write(b"\n".join(lines[:-1]) + b"\n")

zone = {
    "remote.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "_dmarc.remote.test": {"TXT": ["v=DMARC1; p=reject"]},
    "bench._domainkey.remote.test": {"TXT": [f"v=DKIM1; k=rsa; p={pub}"]},
}
with open(zone_out, "w") as f:
    json.dump(zone, f, indent=1)
print(len(signed))
