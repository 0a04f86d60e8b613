"""smtplib.LMTP over a unix socket path.  usage: lmtp_unix.py PATH"""
import smtplib
import sys

with smtplib.LMTP(sys.argv[1], timeout=10) as s:
    refused = s.sendmail("carol@remote.test", ["bob@example.test"], b"Subject: via unix socket\r\n\r\nx\r\n")
    assert refused == {}, refused
print("lmtp unix: ok")
