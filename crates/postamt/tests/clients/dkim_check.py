#!/usr/bin/env python3
"""DKIM with dkimpy (PyPI), the independent implementation the relay tests
check postamt against.

  dkim_check.py verify MESSAGE_FILE RECORD_FILE
      verifies every signature; keys come from RECORD_FILE (one line
      "name TXT-value" per key) instead of DNS. Exit 0 when all pass.
  dkim_check.py arc-verify MESSAGE_FILE RECORD_FILE
      verifies the ARC chain (RFC 8617) with keys from RECORD_FILE; prints
      the chain validation status. Exit 0 when it is "pass".
  dkim_check.py sign MESSAGE_FILE KEY_PEM SELECTOR DOMAIN [ed25519]
      prints the message with a dkimpy signature (relaxed/relaxed) on top.
  dkim_check.py arc-sign MESSAGE_FILE KEY_PEM SELECTOR DOMAIN SRV_ID
      prints the message with a dkimpy ARC set (RFC 8617) on top, sealed as
      DOMAIN; the message must carry an Authentication-Results of SRV_ID.
"""
import sys

import dkim


def main():
    mode, path = sys.argv[1], sys.argv[2]
    message = open(path, "rb").read()
    if mode in ("verify", "arc-verify"):
        records = {}
        for line in open(sys.argv[3]):
            name, _, value = line.strip().partition(" ")
            records[name.rstrip(".").lower()] = value.encode()

        def dnsfunc(name, timeout=5):
            return records.get(name.decode().rstrip(".").lower())

        if mode == "arc-verify":
            cv, _results, comment = dkim.arc_verify(message, dnsfunc=dnsfunc)
            print(cv.decode(), comment)
            sys.exit(0 if cv == b"pass" else 1)

        d = dkim.DKIM(message)
        n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
        if n == 0:
            print("no signature")
            sys.exit(1)
        ok = all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n))
        print("pass" if ok else "fail")
        sys.exit(0 if ok else 1)
    key = open(sys.argv[3], "rb").read()
    selector, domain = sys.argv[4].encode(), sys.argv[5].encode()
    if mode == "arc-sign":
        headers = dkim.arc_sign(message, selector, domain, key, sys.argv[6].encode())
        sys.stdout.buffer.write(b"".join(headers) + message)
        return
    algo = b"ed25519-sha256" if len(sys.argv) > 6 else b"rsa-sha256"
    sig = dkim.sign(message, selector, domain, key,
                    canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=algo,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sys.stdout.buffer.write(sig + message)


main()
