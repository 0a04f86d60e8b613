"""Python's smtplib (a client nobody here wrote) against postamt's SMTP,
submission, submissions and LMTP listeners.

usage: smtplib_session.py HOST SMTP_PORT SUBMISSION_PORT SUBMISSIONS_PORT LMTP_PORT
Sends five messages to alice@example.test (each Subject names its path);
the caller reads them back over POP3. Exits non-zero on the first failure.
"""
import email.policy
import smtplib
import ssl
import sys
from email.message import EmailMessage

host = sys.argv[1]
smtp_port, sub_port, subs_port, lmtp_port = (int(x) for x in sys.argv[2:6])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def msg(subject, sender="carol@remote.test"):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "alice@example.test"
    m["Subject"] = subject
    m.set_content("Body of " + subject + "\n")
    return m


# 1. Plain SMTP on the inbound port
with smtplib.SMTP(host, smtp_port, timeout=10) as s:
    code, _ = s.ehlo("client.test")
    check(code == 250, "EHLO")
    check(s.has_extn("pipelining") and s.has_extn("smtputf8") and s.has_extn("chunking"), "extensions")
    refused = s.send_message(msg("inbound plain"))
    check(refused == {}, f"refused {refused}")

# 2. STARTTLS on the inbound port
with smtplib.SMTP(host, smtp_port, timeout=10) as s:
    s.starttls(context=ctx)
    s.ehlo("client.test")
    check(not s.has_extn("starttls"), "STARTTLS offered again inside TLS")
    s.send_message(msg("inbound starttls"))

# 3. Submission: STARTTLS, AUTH LOGIN
with smtplib.SMTP(host, sub_port, timeout=10) as s:
    s.starttls(context=ctx)
    s.ehlo("laptop.test")
    s.login("alice@example.test", "alice-pw")  # smtplib prefers CRAM-MD5, then PLAIN, then LOGIN
    s.send_message(msg("submission starttls", sender="alice@example.test"))
with smtplib.SMTP(host, sub_port, timeout=10) as s:
    s.starttls(context=ctx)
    s.ehlo("laptop.test")
    s.user, s.password = "alice@example.test", "alice-pw"
    code, _ = s.auth("LOGIN", s.auth_login)
    check(code == 235, "AUTH LOGIN")
    try:
        s.send_message(msg("not mine", sender="bob@example.test"))
        check(False, "sent with someone else's From:")
    except smtplib.SMTPSenderRefused as e:
        check(e.smtp_code == 553, f"code {e.smtp_code}")
    except smtplib.SMTPDataError as e:
        check(e.smtp_code == 553, f"code {e.smtp_code}")

# 4. Submissions (implicit TLS, RFC 8314) with AUTH PLAIN and SMTPUTF8
with smtplib.SMTP_SSL(host, subs_port, context=ctx, timeout=10) as s:
    s.ehlo("laptop.test")
    s.user, s.password = "alice@example.test", "alice-pw"
    code, _ = s.auth("PLAIN", s.auth_plain)
    check(code == 235, "AUTH PLAIN")
    # policy SMTPUTF8: UTF-8 headers go out as UTF-8, not RFC 2047 words.
    m = EmailMessage(policy=email.policy.SMTPUTF8)
    m["From"] = "Alice <alice@example.test>"
    m["To"] = "alice@example.test"
    m["Subject"] = "submissions smtputf8 Grüße"
    m.set_content("Grüße aus Köln\n")
    refused = s.send_message(m, mail_options=["SMTPUTF8"])
    check(refused == {}, "SMTPUTF8 message")

# 5. Wrong password
with smtplib.SMTP_SSL(host, subs_port, context=ctx, timeout=10) as s:
    try:
        s.login("alice@example.test", "wrong")
        check(False, "wrong password accepted")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 535, f"code {e.smtp_code}")

# 6. LMTP (RFC 2033) with one reply per recipient
with smtplib.LMTP(host, lmtp_port, timeout=10) as s:
    s.ehlo_or_helo_if_needed()
    # A str message: smtplib turns its line endings into CRLF (bytes would
    # be sent as they are, bare LFs and all, and refused).
    refused = s.sendmail("carol@remote.test", ["alice@example.test"], msg("lmtp").as_string())
    check(refused == {}, f"LMTP refused {refused}")
print("smtplib: all checks passed")
