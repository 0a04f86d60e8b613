"""Prints the SHA-256 fingerprint of the certificate a TLS port presents."""
import hashlib
import socket
import ssl
import sys

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    with ctx.wrap_socket(s, server_hostname=sys.argv[1]) as t:
        print(hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest())
