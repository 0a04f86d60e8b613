"""CVE-2011-0411 class: commands pipelined behind STLS in the same packet
must be discarded, not executed inside the TLS session.

usage: stls_injection.py HOST PORT
"""
import socket
import ssl
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
assert f.readline().startswith(b"+OK")
# The injected USER would make "PASS" below succeed if it survived.
s.sendall(b"STLS\r\nUSER alice@example.test\r\n")
line = f.readline()
assert line.startswith(b"+OK"), line
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname=host)
tf = t.makefile("rb")
t.sendall(b"PASS alice-pw\r\n")
reply = tf.readline()
if not reply.startswith(b"-ERR"):
    print("FAIL: injected plaintext command was executed:", reply)
    sys.exit(1)
t.sendall(b"QUIT\r\n")
print("stls injection: plaintext discarded:", reply.decode().strip())
