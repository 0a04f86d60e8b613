# idle_conns.py PORT PID N GREETING: opens N connections to 127.0.0.1:PORT,
# checks each greeting starts with GREETING and that none is closed after
# 2 s, and prints the server's (PID) RSS before and after, in kB, and the
# bytes each connection costs.
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
greeting = sys.argv[4].encode()
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
time.sleep(1)
before = rss()
socks = []
try:
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        g = b""
        while not g.endswith(b"\r\n"):
            d = s.recv(512)
            if not d:
                break
            g += d
        if not g.startswith(greeting):
            sys.exit(f"connection {len(socks)}: greeting {g!r}")
        socks.append(s)
    time.sleep(2)
    # every connection must still be open (nothing closed on us)
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                sys.exit("a connection was closed by the server")
        except BlockingIOError:
            pass
    after = rss()
finally:
    for s in socks:
        s.close()
print(before, after, round((after - before) * 1024 / n))
