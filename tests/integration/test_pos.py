#!/usr/bin/env python3
"""`waybill-ingest pos` against the real broker, on a private topic prefix.

- a CSV export (sales over several rows, a quoted title with a comma and a
  quote, a till return against an earlier receipt) -> exactly the expected
  events, keyed by order id, and they decode (wb-topic-dump);
- the same export as NDJSON -> the same event ids (so the ledger dedupes);
- re-reading the CSV -> the same event ids again (idempotent per receipt);
- a receipt exported again with an extra line -> new ids (a new version);
- from stdin ("-");
- a file with bad lines -> exit 1, FILE:LINE: reason for each bad line and
  for each receipt kept out, while the good receipts are delivered;
- no merchant configured -> exit 2 before touching Kafka; --help per mode.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402

HEADER = ("store_id,receipt_no,line_no,kind,sku,title,qty,unit_price,currency,"
          "tax,total,payment_status,occurred_at,email,return_reason,"
          "original_receipt_no,original_line_no,restock")

CSV = HEADER + "\n" + "\n".join([
    'store12,000123,1,sale,MUG-01,Mug,2,4.50,USD,0.72,9.72,paid,2026-01-07T10:00:00Z,ann@example.com,,,,',
    'store12,000123,2,sale,TEA-9,"Tea, green ""sencha""",1,12.00,USD,0.96,12.96,,2026-01-07T10:00:00Z,,,,,',
    'store12,000124,1,sale,BAG,Bag,1,3.00,USD,,,pending,2026-01-07T10:05:00Z,,,,,',
    'store12,000200,1,return,MUG-01,Mug,1,4.50,USD,0.36,4.86,,2026-01-08T09:00:00Z,,damaged,000123,1,false',
]) + "\n"

# ids end with a hash of the receipt's rows (README "POS exports")
H123, H124, H200 = "0ec3fd729378ee6d", "463e72b6e460b0cc", "21b791c0e9957312"
EXPECTED = [
    ("pos:store12-000123", "pos:store12-000123:placed:" + H123, "OrderPlaced"),
    ("pos:store12-000123", "pos:store12-000123:payment:paid:" + H123, "PaymentStatusChanged"),
    ("pos:store12-000124", "pos:store12-000124:placed:" + H124, "OrderPlaced"),
    ("pos:store12-000124", "pos:store12-000124:payment:pending:" + H124, "PaymentStatusChanged"),
    ("pos:store12-000123", "pos:store12-000123:return:000200:" + H200, "ReturnReceived"),
    ("pos:store12-000123", "pos:store12-000123:refund:000200:" + H200, "RefundIssued"),
]

# receipt 000124 exported again with a second line: a new version of it
REEXPORT = HEADER + "\n" + "\n".join([
    'store12,000124,1,sale,BAG,Bag,1,3.00,USD,,,pending,2026-01-07T10:05:00Z,,,,,',
    'store12,000124,2,sale,MUG-01,Mug,1,4.50,USD,,,pending,2026-01-07T10:05:00Z,,,,,',
]) + "\n"

BAD = HEADER + "\n" + "\n".join([
    'store1,A,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 2 good
    'store1,B,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 3 B kept out
    'store1,B,2,sale,X,x,two,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',    # 4 bad number
    'store1,C,1,sale,X,x,1,1.00,USD,,,,2026-13-07T10:00:00Z,,,,,',      # 5 bad date
    'store1,D,1,gift,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 6 unknown kind
    'store1,E,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 7 good
    'store1,F,1,sale,X,"x"y,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',   # 8 bad quoting, F out
    'store1,G,1,sale,X,x,1,1.00,USD',                                   # 9 column count
    'store1,H,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 10 next to 9: out
    'store1,I,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,',      # 11 good
]) + "\n"


def tail(b, n=300):
    return b.decode(errors="replace")[-n:].replace("\n", " | ")


def dump(topics):
    r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, topics.topic("events"), "events"])
    rows = []
    for line in r.stdout.decode().splitlines():
        part, key, eid, typ = line.split()
        rows.append((key, eid, typ))
    return r.returncode, rows


def main():
    T.require_broker()
    with T.Topics("pos") as topics, T.TempDir() as tmp:
        flags = T.common_flags(topics) + ["--ingest.pos.merchant=acme"]
        ingest = [T.exe("waybill-ingest"), "pos"]
        csv = os.path.join(tmp, "export.csv")
        with open(csv, "w") as f:
            f.write(CSV)
        r = T.run(ingest + [csv] + flags)
        T.ok(r.returncode == 0, "CSV export: exit 0 (%s)" % tail(r.stderr))
        T.ok(r.stdout.decode().strip() ==
             "rows=4 rejected=0 receipts=3 receipts_rejected=0 events=6 acked=6 failed=0",
             "summary: " + r.stdout.decode().strip())
        rc, rows = dump(topics)
        T.ok(rc == 0 and sorted(rows) == sorted(EXPECTED),
             "exactly the expected events reached Kafka, keyed by order id")
        if sorted(rows) != sorted(EXPECTED):
            T.diag("got %s" % rows)
        per_key = {}
        for key, eid, _ in rows:
            per_key.setdefault(key, []).append(eid)
        T.ok(per_key.get("pos:store12-000123", [])[:2] ==
             ["pos:store12-000123:placed:" + H123, "pos:store12-000123:payment:paid:" + H123],
             "one order's events in order on its partition")

        # the same export as NDJSON: the same ids
        nd = os.path.join(tmp, "export.ndjson")
        cols = HEADER.split(",")
        import csv as csvmod
        with open(nd, "w") as f:
            for rec in csvmod.DictReader(CSV.splitlines()):
                f.write(json.dumps({k: v for k, v in rec.items() if v != ""}) + "\n")
        r = T.run(ingest + [nd] + flags)
        T.ok(r.returncode == 0, "NDJSON export: exit 0 (%s)" % tail(r.stderr))
        _, rows = dump(topics)
        ids = sorted(e for _, e, _ in rows)
        want = sorted([e for _, e, _ in EXPECTED] * 2)
        T.ok(ids == want, "NDJSON gives the same event ids as CSV (dedupe in the ledger)")

        # stdin, and a re-run: the same ids a third time
        r = T.run(ingest + ["-"] + flags, input=CSV.encode())
        T.ok(r.returncode == 0 and "events=6 acked=6" in r.stdout.decode(),
             "from stdin: " + r.stdout.decode().strip())
        _, rows = dump(topics)
        T.ok(sorted(e for _, e, _ in rows) == sorted([e for _, e, _ in EXPECTED] * 3),
             "re-reading the export repeats the same event ids only")

        # a receipt exported again with an extra line: new ids, so the
        # ledger records the new version instead of dropping it
        re_csv = os.path.join(tmp, "reexport.csv")
        with open(re_csv, "w") as f:
            f.write(REEXPORT)
        before = collections.Counter(e for _, e, _ in rows)
        r = T.run(ingest + [re_csv] + flags)
        _, rows = dump(topics)
        new = sorted((collections.Counter(e for _, e, _ in rows) - before).elements())
        T.ok(r.returncode == 0 and len(new) == 2 and
             new[0].startswith("pos:store12-000124:payment:pending:") and
             new[1].startswith("pos:store12-000124:placed:") and
             not set(new) & set(e for _, e, _ in EXPECTED),
             "re-export with an extra line: a new OrderPlaced and payment (%s)" % new)

        # bad lines
        bad = os.path.join(tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write(BAD)
        before = collections.Counter(e for _, e, _ in rows)
        r = T.run(ingest + [bad] + flags)
        err = r.stderr.decode()
        T.ok(r.returncode == 1, "file with bad lines: exit 1 (got %d)" % r.returncode)
        for want_line in [
                bad + ":4: qty: 'two' is not a whole number",
                bad + ":3: receipt store1/B (lines 3-4) not ingested: line 4",
                bad + ":5: occurred_at: '2026-13-07T10:00:00Z' is not an RFC 3339 time",
                bad + ":6: unknown kind 'gift' (sale or return)",
                bad + ":8: bad quoting: text after the closing quote of field 6",
                bad + ":8: receipt store1/F (lines 8-8) not ingested: line 8",
                bad + ":9: wrong column count: 9 fields, the header has 18",
                bad + ":10: receipt store1/H (lines 10-10) not ingested: line 9"]:
            T.ok(want_line in err, "stderr names %s" % want_line.replace(bad, "FILE"))
        _, rows = dump(topics)
        new = sorted((collections.Counter(e for _, e, _ in rows) - before).elements())
        h = ":2e6350fa63027576"
        T.ok(new == sorted([p + h for p in [
            "pos:store1-A:placed", "pos:store1-A:payment:paid",
            "pos:store1-E:placed", "pos:store1-E:payment:paid",
            "pos:store1-I:placed", "pos:store1-I:payment:paid"]]),
             "the good receipts A, E and I were delivered (%s)" % new)
        T.ok("rows=10 rejected=5 receipts=3 receipts_rejected=5 events=6 acked=6 failed=0"
             in r.stdout.decode(), "summary: " + r.stdout.decode().strip())

        # a line over ingest.max.line.bytes: rejected without being held
        long = os.path.join(tmp, "long.csv")
        with open(long, "w") as f:
            f.write(HEADER + "\n" + CSV.splitlines()[3] + "\n"
                    + "store9,L,1,sale,X," + "x" * 5000 + ",1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
                    + "store9,M,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n"
                    + "store9,N,1,sale,X,x,1,1.00,USD,,,,2026-01-07T10:00:00Z,,,,,\n")
        r = T.run(ingest + [long, "--ingest.max.line.bytes=1000"] + flags)
        err = r.stderr.decode()
        T.ok(r.returncode == 1 and long + ":3: line longer than 1000 bytes" in err
             and "receipts=1 receipts_rejected=2" in r.stdout.decode(),
             "over-long line 3 rejected; its neighbours kept out, N delivered (%s)"
             % r.stdout.decode().strip())

        # configuration errors and help
        r = T.run(ingest + [csv] + T.common_flags(topics))
        T.ok(r.returncode == 2 and b"ingest.pos.merchant is required" in r.stderr,
             "no merchant: exit 2 with the reason")
        r = T.run([T.exe("waybill-ingest"), "pos", "--help"])
        out = r.stdout.decode()
        T.ok(r.returncode == 0 and "pos FILE|-" in out and "ingest.pos.format" in out
             and "amazon-poll" not in out.split("Options")[0],
             "pos --help describes the mode and its options")
    T.done()


if __name__ == "__main__":
    main()
