#!/usr/bin/env python3
"""A plain Python payment agent, the yardstick payterm's daemon is measured against.

It does what the daemon does for a paid payment, with the same durability: an intent row
committed before the pay request (SQLite in WAL with synchronous=FULL), the aggregator's MD5
signature on the request, the reply's signature checked, the outcome committed after, over one
kept-alive HTTP connection. Nothing else: no screen, no recovery, no API in front of it.

    scripts/python_agent.py --url http://127.0.0.1:PORT --key-file agg.key --n 1000

Prints one JSON object: payments, CPU per payment (user, system), wall per payment.
"""

import argparse
import hashlib
import http.client
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
import urllib.parse


def sign(fields, key):
    pairs = sorted((k, v) for k, v in fields.items() if v != "" and k != "sign")
    s = "&".join(f"{k}={v}" for k, v in pairs) + "&key=" + key
    return hashlib.md5(s.encode("utf-8")).hexdigest().upper()


class Agent:
    def __init__(self, url, key, journal):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
        self.key = key
        self.db = sqlite3.connect(journal, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS attempts(out_trade_no TEXT PRIMARY KEY, amount_fen INTEGER,"
            " state TEXT, created_ms INTEGER, updated_ms INTEGER)"
        )

    def post(self, fields):
        fields = dict(fields)
        fields["sign"] = sign(fields, self.key)
        body = urllib.parse.urlencode(fields)
        self.conn.request(
            "POST",
            "/UnifiedPay/Gateway",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            return None
        reply = json.loads(data)
        given = reply.get("sign", "")
        flat = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in reply.items()}
        if sign(flat, self.key) != given:
            return None
        return reply

    def pay(self, no, fen, code):
        now = int(time.time() * 1000)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT INTO attempts VALUES (?, ?, 'PAY_INTENT', ?, ?)", (no, fen, now, now)
        )
        self.db.execute("COMMIT")
        r = self.post(
            {
                "method": "pay",
                "agent_id": "130000000000000000",
                "version": "1.0",
                "pid": "pyagent",
                "mch_id": "00000001",
                "auth_code": code,
                "out_trade_no": no,
                "total_fee": str(fen),
                "body": "bench",
            }
        )
        paid = (
            r is not None
            and r.get("state") == "SUCCESS"
            and r.get("code") == "10000"
            and r.get("trade_state") == "SUCCESS"
            and r.get("out_trade_no") == no
            and str(r.get("total_fee")) == str(fen)
        )
        state = "PAID" if paid else "QUERYING"
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "UPDATE attempts SET state = ?, updated_ms = ? WHERE out_trade_no = ?",
            (state, int(time.time() * 1000), no),
        )
        self.db.execute("COMMIT")
        return paid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--journal", default=None)
    a = ap.parse_args()
    key = open(a.key_file).read().strip()
    tmp = tempfile.mkdtemp()
    agent = Agent(a.url, key, a.journal or os.path.join(tmp, "py.db"))
    prefix = "PY%06d" % (os.getpid() % 1000000)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    paid = 0
    for i in range(a.n):
        code = "1345678%011d" % (i + (os.getpid() % 1000) * 100000)
        paid += agent.pay(f"{prefix}{i:08d}", 1200, code)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = max(a.n, 1)
    print(
        json.dumps(
            {
                "agent": "python",
                "payments": a.n,
                "paid": paid,
                "cpu_ms_per_payment": round((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000 / n, 3),
                "user_ms_per_payment": round((after.ru_utime - before.ru_utime) * 1000 / n, 3),
                "sys_ms_per_payment": round((after.ru_stime - before.ru_stime) * 1000 / n, 3),
                "wall_ms_per_payment": round(wall * 1000 / n, 3),
            }
        )
    )
    return 0 if paid == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
