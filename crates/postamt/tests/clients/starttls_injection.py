"""CVE-2011-0411: plaintext pipelined behind STARTTLS must be discarded.

usage: starttls_injection.py HOST PORT
"""
import socket
import ssl
import sys

host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
assert f.readline().startswith(b"220")
s.sendall(b"EHLO x.test\r\n")
while True:
    l = f.readline()
    if l[3:4] == b" ":
        break
# The injected MAIL FROM would make RCPT succeed if it survived.
s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")
line = f.readline()
assert line.startswith(b"220"), line
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname=host)
tf = t.makefile("rb")
t.sendall(b"EHLO x.test\r\n")
while True:
    l = tf.readline()
    if l[3:4] == b" ":
        break
t.sendall(b"RCPT TO:<alice@example.test>\r\n")
reply = tf.readline()
if not reply.startswith(b"503"):
    print("FAIL: injected plaintext command was executed:", reply)
    sys.exit(1)
print("starttls injection: plaintext discarded:", reply.decode().strip())
