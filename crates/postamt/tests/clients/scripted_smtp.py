#!/usr/bin/env python3
"""A scripted SMTP server for the relay tests: it answers what the test
tells it to, and records what the client sent, byte for byte.

Usage: scripted_smtp.py SCRIPT.json OUTDIR [IP[:PORT]]
Prints "ready PORT" once listening. SCRIPT is a list of behaviours, one per
connection in order (the last one repeats); each is a dict with optional keys:

  greeting   "220 sink ESMTP"             first reply ("421 ..." to refuse)
  ehlo       ["PIPELINING", "SIZE 1000", ...]   EHLO keywords (default below)
  no_ehlo    true                          EHLO gets 502 (HELO then works)
  mail       "250 2.1.0 ok"
  rcpt       "250 2.1.5 ok"                default RCPT reply
  rcpt_map   {"addr": "550 5.1.1 no"}      per-address RCPT replies
  rcpt_first [2, "451 4.3.0 later"]        the first 2 RCPTs (of all connections) get this
  data       "354 go ahead"
  final      "250 2.0.0 ok"                reply after the final dot / BDAT LAST
  drop_in_data  true                       close after the first DATA bytes
  stall      "greeting"|"ehlo"|"final"     never answer at that point
  final_delay   seconds                    wait before the final reply
  tls        ["cert.pem", "key.pem"]       offer STARTTLS with this cert
  auth       "user:password"               offer AUTH PLAIN LOGIN, require it

Every transaction is written to OUTDIR/txn-N.json: the MAIL and RCPT lines,
the raw DATA bytes as received (still dot-stuffed; base64), the unstuffed
message, whether TLS and AUTH were used. OUTDIR/log has one line per event.
"""
import asyncio
import base64
import json
import os
import ssl
import sys

DEFAULT_EHLO = ["PIPELINING", "SIZE 20000000", "8BITMIME", "SMTPUTF8", "DSN",
                "ENHANCEDSTATUSCODES"]

script = json.load(open(sys.argv[1]))
outdir = sys.argv[2]
bind = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
host, _, port = bind.partition(":")
counter = {"conn": 0, "txn": 0}


def log(line):
    with open(os.path.join(outdir, "log"), "a") as f:
        f.write(line + "\n")


def unstuff(raw):
    lines = raw.split(b"\r\n")
    out = [l[1:] if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(out)


class Session:
    def __init__(self, reader, writer, b):
        self.r, self.w, self.b = reader, writer, b
        self.tls = False
        self.authed = False

    async def send(self, line):
        self.w.write((line + "\r\n").encode())
        await self.w.drain()

    async def readline(self):
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed")
        return line

    async def stall(self):
        # Hold the connection until the client gives up.
        try:
            while await self.r.read(4096):
                pass
        except Exception:
            pass

    async def run(self):
        b = self.b
        if b.get("stall") == "greeting":
            return await self.stall()
        await self.send(b.get("greeting", "220 sink.test ESMTP scripted"))
        if b.get("greeting", "220").startswith(("4", "5")):
            return
        mail, rcpts = None, []
        while True:
            raw = await self.readline()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ")[0].upper()
            log(f"C: {line}")
            if verb == "EHLO":
                if b.get("stall") == "ehlo":
                    return await self.stall()
                if b.get("no_ehlo"):
                    await self.send("502 5.5.1 EHLO not implemented")
                    continue
                kw = list(b.get("ehlo", DEFAULT_EHLO))
                if b.get("tls") and not self.tls:
                    kw.append("STARTTLS")
                if b.get("auth") and (self.tls or not b.get("tls")):
                    kw.append("AUTH PLAIN LOGIN")
                lines = ["sink.test greets you"] + kw
                for i, l in enumerate(lines):
                    self.w.write(f"250{'-' if i < len(lines) - 1 else ' '}{l}\r\n".encode())
                await self.w.drain()
            elif verb == "HELO":
                await self.send("250 sink.test")
            elif verb == "STARTTLS" and b.get("tls"):
                await self.send("220 2.0.0 go ahead")
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(*b["tls"])
                await self.w.start_tls(ctx)
                self.tls = True
                log("TLS started")
            elif verb == "AUTH":
                user, _, pw = b["auth"].partition(":")
                parts = line.split(" ")
                ok = False
                if parts[1].upper() == "PLAIN" and len(parts) > 2:
                    dec = base64.b64decode(parts[2]).split(b"\0")
                    ok = dec[1:] == [user.encode(), pw.encode()]
                elif parts[1].upper() == "LOGIN":
                    await self.send("334 VXNlcm5hbWU6")
                    u = base64.b64decode((await self.readline()).strip())
                    await self.send("334 UGFzc3dvcmQ6")
                    p = base64.b64decode((await self.readline()).strip())
                    ok = (u, p) == (user.encode(), pw.encode())
                self.authed = ok
                log(f"AUTH {'ok' if ok else 'failed'}")
                await self.send("235 2.7.0 ok" if ok else "535 5.7.8 bad credentials")
            elif verb == "MAIL":
                if b.get("auth") and not self.authed:
                    await self.send("530 5.7.0 authentication required")
                    continue
                reply = b.get("mail", "250 2.1.0 ok")
                mail, rcpts = (line if reply.startswith("2") else None), []
                await self.send(reply)
            elif verb == "RCPT" and mail is None:
                await self.send("503 5.5.1 MAIL first")
            elif verb == "RCPT":
                addr = line.split(":", 1)[1].split(">")[0].lstrip(" <")
                reply = b.get("rcpt_map", {}).get(addr, b.get("rcpt", "250 2.1.5 ok"))
                if b.get("rcpt_first") and counter.setdefault("rcpt", 0) < b["rcpt_first"][0]:
                    counter["rcpt"] += 1
                    reply = b["rcpt_first"][1]
                if reply.startswith("2"):
                    rcpts.append(line)
                await self.send(reply)
            elif verb == "DATA":
                if not rcpts:
                    await self.send("554 5.5.1 no valid recipients")
                    continue
                await self.send(b.get("data", "354 go ahead"))
                if b.get("drop_in_data"):
                    await self.r.read(10)
                    log("dropped in DATA")
                    self.w.close()
                    return
                data = b""
                while True:
                    chunk = await self.readline()
                    if chunk == b".\r\n":
                        break
                    data += chunk
                await self.finish(mail, rcpts, data, unstuff(data))
                mail, rcpts = None, []
            elif verb == "BDAT":
                size = int(line.split(" ")[1])
                data = await self.r.readexactly(size)
                if "LAST" in line.upper():
                    await self.finish(mail, rcpts, data, data)
                    mail, rcpts = None, []
                else:
                    await self.send(f"250 2.0.0 {size} octets")
            elif verb == "RSET":
                mail, rcpts = None, []
                await self.send("250 2.0.0 ok")
            elif verb == "NOOP":
                await self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                await self.send("221 2.0.0 bye")
                self.w.close()
                return
            else:
                await self.send("500 5.5.2 unknown command")

    async def finish(self, mail, rcpts, raw, message):
        if self.b.get("stall") == "final":
            return await self.stall()
        if self.b.get("final_delay"):
            await asyncio.sleep(self.b["final_delay"])
        final = self.b.get("final", "250 2.0.0 ok")
        if final.startswith("2"):
            counter["txn"] += 1
            n = counter["txn"]
            rec = {"mail": mail, "rcpts": rcpts, "tls": self.tls, "auth": self.authed,
                   "raw": base64.b64encode(raw).decode(),
                   "message": base64.b64encode(message).decode()}
            path = os.path.join(outdir, f"txn-{n}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(rec, f)
            os.rename(path + ".tmp", path)
        await self.send(final)


async def handle(reader, writer):
    i = counter["conn"]
    counter["conn"] += 1
    b = script[min(i, len(script) - 1)]
    log(f"connection {i + 1}")
    try:
        await Session(reader, writer, b).run()
    except Exception as e:
        log(f"session ended: {e!r}")
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    server = await asyncio.start_server(handle, host, int(port or 0))
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
