# The messages of the benchmarks: the same bytes as bench_message() in
# crates/postamt/examples/bench_fill.rs, and with the two header lines
# postamt_mda::deliver prepends (Return-Path, Delivered-To), which a Dovecot
# delivery would add too.
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n"

def bench_message(i, size):
    m = (f"From: Bench <bench@remote.test>\r\nTo: user@bench.test\r\nSubject: message {i}\r\n"
         f"Message-ID: <{i}@bench.test>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n").encode()
    while len(m) + len(LINE) <= size:
        m += LINE
    return m

def delivered(i, size, address):
    return (f"Return-Path: <bench@remote.test>\r\nDelivered-To: {address}\r\n").encode() + bench_message(i, size)
