# Issue 18, item 1 ("message content in PostgreSQL: bytea or large objects:
# measure, decide, write down why"): one committed transaction per message
# (as an SMTP 250 needs), then a read of every message, for 4 KB and 100 KB
# contents, bytea (EXTERNAL=1: `SET STORAGE EXTERNAL`, no pglz attempt) vs
# large objects (lo_from_bytea / lo_get). Results in bench/README.md,
# "PostgreSQL: bytea or large objects (issue 18)".
#
# usage: pip install "psycopg[binary]"; [EXTERNAL=1] python3 bench/py/pg_content.py
#        (PostgreSQL on 127.0.0.1:5432, role root, database test, trust auth;
#        PG_DSN overrides). Creates and drops the tables m_bytea and m_lo.
import os, time, psycopg, statistics
DSN = os.environ.get("PG_DSN", "host=127.0.0.1 user=root dbname=test")
N = {4096: 2000, 102400: 500}
def run(kind, size, n, conn):
    data = [os.urandom(size // 2).hex().encode()[:size] for _ in range(50)]
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS m_bytea; DROP TABLE IF EXISTS m_lo")
    cur.execute("CREATE TABLE m_bytea (id bigserial primary key, data bytea not null)")
    if os.environ.get("EXTERNAL"): cur.execute("ALTER TABLE m_bytea ALTER COLUMN data SET STORAGE EXTERNAL")
    cur.execute("CREATE TABLE m_lo (id bigserial primary key, data oid not null)")
    conn.commit()
    t = time.perf_counter()
    for i in range(n):
        d = data[i % 50]
        if kind == "bytea":
            cur.execute("INSERT INTO m_bytea(data) VALUES (%s)", (d,))
        else:
            cur.execute("INSERT INTO m_lo(data) VALUES (lo_from_bytea(0, %s))", (d,))
        conn.commit()
    w = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(1, n + 1):
        if kind == "bytea":
            cur.execute("SELECT data FROM m_bytea WHERE id = %s", (i,))
        else:
            cur.execute("SELECT lo_get(data) FROM m_lo WHERE id = %s", (i,))
        assert len(cur.fetchone()[0]) == size
    conn.commit()
    r = time.perf_counter() - t
    cur.execute("SELECT pg_total_relation_size('m_bytea'), (SELECT pg_total_relation_size('pg_largeobject'))")
    sizes = cur.fetchone()
    if kind == "lo":
        cur.execute("SELECT lo_unlink(data) FROM m_lo"); conn.commit()
    print(f"{kind:5} size={size:6} n={n:5} write {n/w:7.0f} msg/s  read {n/r:7.0f} msg/s  bytea_table={sizes[0]//1024} KiB  pg_largeobject={sizes[1]//1024} KiB")
with psycopg.connect(DSN) as conn:
    for size, n in N.items():
        for kind in ("bytea", "lo", "bytea", "lo"):
            run(kind, size, n, conn)
    cur = conn.cursor(); cur.execute("DROP TABLE m_bytea; DROP TABLE m_lo"); conn.commit()
