"""The mailbox imaptest APPENDs from (bench/imaptest_mix.sh,
bench/imaptest_profile.sh): 200 small text messages with unique
Message-IDs, in mbox format. usage: imaptest_mbox.py OUT"""
import email.utils
import sys
import time

base = 1700000000
with open(sys.argv[1], "w") as f:
    for i in range(1, 201):
        t = base + i * 3600
        f.write("From sender%d@example.net %s\n" % (i % 7, time.asctime(time.gmtime(t))))
        f.write("From: Sender %d <sender%d@example.net>\n" % (i % 7, i % 7))
        f.write("To: alice@postamt.test\n")
        f.write("Subject: Test message %d\n" % i)
        f.write("Date: %s\n" % email.utils.formatdate(t))
        f.write("Message-ID: <imaptest-%d@example.net>\n" % i)
        f.write("MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
        for l in range(1 + i % 5):
            f.write("This is line %d of test message %d.\n" % (l + 1, i))
        f.write("\n")
