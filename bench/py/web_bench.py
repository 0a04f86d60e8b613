# The web interface benchmark's client (standard library only), used by
# bench/web_pages.sh. Subcommands:
#
#   pages PORT USER PASS ROUNDS
#       POST /api/login, then over one keep-alive connection: for each page
#       of PAGES (the INBOX's id and newest UID found through the API), one
#       warm-up request and ROUNDS timed ones, each timed from sending the
#       request to the last byte of the response. Prints one "page" line per
#       page: name, status, bytes, p50 / p90 / max in ms.
#   follow PORT USER PASS N SECONDS ID
#       N keep-alive connections (N browsers on a transcript page), each
#       asking GET /api/sessions/ID?from=K&wait=25 again 0.1 s after each
#       answer, as the page's script does (the server holds a request until
#       a new row or 25 s), for SECONDS. Prints one "follow" line:
#       requests, errors, followers still connected at the end.
#
# Every socket operation has a timeout (WEB_TIMEOUT, default 60 s).
import asyncio, json, os, socket, sys, time

TIMEOUT = float(os.environ.get("WEB_TIMEOUT", "60"))
now = time.perf_counter


def read_response(f):
    """Status, headers (lower-cased), body of one HTTP/1.1 response."""
    status = f.readline()
    if not status:
        raise EOFError("connection closed")
    code = int(status.split()[1])
    headers = {}
    while True:
        line = f.readline().decode("latin-1").strip()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                f.readline()
                break
            body += f.read(size)
            f.readline()
    else:
        body = f.read()
    return code, headers, body


class Conn:
    def __init__(self, port):
        self.port = port
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")
        self.cookie = None

    def request(self, method, path, body=b"", headers=()):
        h = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        if self.cookie:
            h.append(f"Cookie: {self.cookie}")
        h.extend(headers)
        if body or method == "POST":
            h.append(f"Content-Length: {len(body)}")
        self.s.sendall(("\r\n".join(h) + "\r\n\r\n").encode() + body)
        return read_response(self.f)


def login(port, user, password):
    c = Conn(port)
    body = json.dumps({"user": user, "password": password}).encode()
    code, headers, resp = c.request(
        "POST", "/api/login", body, ["Content-Type: application/json"]
    )
    if code != 200:
        sys.exit(f"login failed: {code} {resp[:200]!r}")
    c.cookie = headers["set-cookie"].split(";")[0]
    return c


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def cmd_pages(port, user, password, rounds):
    c = login(int(port), user, password)
    rounds = int(rounds)
    code, _, body = c.request("GET", "/api/mailboxes")
    inbox = [m for m in json.loads(body) if m["name"] == "INBOX"][0]
    mb = inbox["id"]
    code, _, body = c.request("GET", f"/api/mailboxes/{mb}/messages")
    newest = json.loads(body)["items"][0]["uid"]
    pages = [
        ("list_first_page", f"/mail/{mb}"),
        ("list_page_1000", f"/mail/{mb}?page=1000"),
        ("list_sorted_by_subject", f"/mail/{mb}?sort=subject"),
        ("list_sorted_by_size", f"/mail/{mb}?sort=largest"),
        ("list_search_rare_word", f"/mail/{mb}?q=raregem"),
        ("list_api_first_page", f"/api/mailboxes/{mb}/messages"),
        ("message_page", f"/mail/{mb}/{newest}"),
        ("message_api", f"/api/messages/{mb}/{newest}"),
        ("message_raw", f"/mail/{mb}/{newest}/raw"),
    ]
    print(f"mailbox messages={inbox['messages']}")
    for name, path in pages:
        c.request("GET", path)  # warm-up
        times = []
        for _ in range(rounds):
            t = now()
            code, _, body = c.request("GET", path)
            times.append((now() - t) * 1000)
        print(
            f"page name={name} status={code} bytes={len(body)} "
            f"p50_ms={pct(times, 0.5):.2f} p90_ms={pct(times, 0.9):.2f} max_ms={max(times):.2f}"
        )


async def follower(port, cookie, tid, seconds, stats):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), TIMEOUT
    )
    end = time.time() + seconds
    shown = 0
    while time.time() < end:
        req = (
            f"GET /api/sessions/{tid}?from={shown}&wait=25 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        )
        try:
            writer.write(req.encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), TIMEOUT)
            length = 0
            while True:
                line = (await asyncio.wait_for(reader.readline(), TIMEOUT)).strip()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
            stats["requests"] += 1
            if b" 200 " not in status:
                stats["errors"] += 1
                return
            rows = len(json.loads(body)["rows"])
            shown += rows
        except Exception:
            stats["errors"] += 1
            return
        await asyncio.sleep(0.1)
    stats["done"] += 1
    writer.close()


async def follow_all(port, cookie, n, seconds, tid):
    stats = {"requests": 0, "errors": 0, "done": 0}
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(follower(port, cookie, tid, seconds, stats)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # spread the first requests a little
    await asyncio.gather(*tasks)
    return stats


def cmd_follow(port, user, password, n, seconds, tid):
    c = login(int(port), user, password)
    stats = asyncio.run(follow_all(int(port), c.cookie, int(n), float(seconds), tid))
    print(
        f"follow browsers={n} requests={stats['requests']} errors={stats['errors']} "
        f"connected_to_the_end={stats['done']}"
    )


if __name__ == "__main__":
    cmds = {"pages": cmd_pages, "follow": cmd_follow}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__ or "usage: web_bench.py pages|follow ...")
    cmds[sys.argv[1]](*sys.argv[2:])
