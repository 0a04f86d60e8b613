#!/usr/bin/env python3
"""A small authoritative DNS server for the relay tests (dnslib, from PyPI).

Usage: dns_server.py ZONE.json
Listens on 127.0.0.1 (UDP and TCP, one kernel-chosen port), prints
"ready PORT", and answers from the zone file until killed:

  {"remote.test": {"MX": [[10, "mx.remote.test"]]},
   "mx.remote.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
   "nullmx.test": {"MX": [[0, "."]]},
   "s1._domainkey.remote.test": {"TXT": ["v=DKIM1; k=rsa; p=..."]}}

A name that is not in the zone is NXDOMAIN; a type the name lacks is an
empty NOERROR answer (with an SOA, as real servers send). The zone file is
read again on every query, so a test can change records while it runs.
"""
import json
import socket
import sys
import time

from dnslib import AAAA, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, path):
        self.path = path

    def resolve(self, request, handler):
        with open(self.path) as f:
            zone = {k.lower().rstrip("."): v for k, v in json.load(f).items()}
        reply = request.reply()
        reply.header.aa = 1
        qname = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        if qname not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(soa(qname))
            return reply
        for value in zone[qname].get(qtype, []):
            if qtype == "A":
                rdata = A(value)
            elif qtype == "AAAA":
                rdata = AAAA(value)
            elif qtype == "MX":
                rdata = MX(value[1] if value[1] != "." else DNSLabel(""), value[0])
            elif qtype == "TXT":
                # Long records as 255-octet strings (RFC 7208 §3.3 style).
                rdata = TXT([value[i:i + 255] for i in range(0, len(value), 255)])
            else:
                continue
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        if not reply.rr:
            reply.add_auth(soa(qname))
        return reply


def soa(name):
    zone = ".".join(name.split(".")[-1:]) or "test"
    return RR(zone, QTYPE.SOA, ttl=60,
              rdata=SOA("ns." + zone, "hostmaster." + zone, (1, 60, 60, 60, 60)))


def free_port():
    # A port free for both UDP and TCP.
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            u.close()
            continue
        u.close()
        t.close()
        return port
    raise SystemExit("no free port")


def main():
    resolver = ZoneResolver(sys.argv[1])
    port = free_port()
    # Quiet: stdout carries only the ready line.
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data")
    servers = [DNSServer(resolver, port=port, address="127.0.0.1", tcp=tcp, logger=quiet)
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print("ready", port, flush=True)
    while all(s.isAlive() for s in servers):
        time.sleep(0.5)


if __name__ == "__main__":
    main()
