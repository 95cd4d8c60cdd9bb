#!/usr/bin/env python3
"""Crash test (issue 2): 200,000 events for 20,000 orders, 10% of the lines
sent twice, ingested while waybill-ledger is killed with SIGKILL at random
moments (at least 5 times) and restarted. Afterwards `waybill replay` must
hold each unique event exactly once with gapless seqs and versions,
`waybill verify` must pass, and orders.ledger must hold every seq (repeats
allowed, gaps not).

Sizes can be lowered for a quick local run: WAYBILL_CRASH_EVENTS,
WAYBILL_CRASH_ORDERS, WAYBILL_CRASH_KILLS.
"""
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402

EVENTS = int(os.environ.get("WAYBILL_CRASH_EVENTS", "200000"))
ORDERS = int(os.environ.get("WAYBILL_CRASH_ORDERS", "20000"))
KILLS = int(os.environ.get("WAYBILL_CRASH_KILLS", "5"))
CHUNKS = 40

TYPES = ["PaymentStatusChanged", "ShipmentStatusChanged", "OrderUpdated"]


def make_event(i, order):
    oid = "pos:store%02d-%06d" % (order % 50, order)
    base = {"event_id": "crash-%d" % i, "merchant": "m%d" % (order % 3),
            "order_id": oid, "channel": "pos", "source_time": 1767225600000 + i,
            "ingest_time": 1767225600000 + i, "source": "crash-test"}
    k = i % 4
    if k == 0:
        base["type"] = "PaymentStatusChanged"
        base["payload"] = {"status": "paid", "amount_paid": {"amount": 1000 + order, "currency": "USD"}}
    elif k == 1:
        base["type"] = "ShipmentStatusChanged"
        base["payload"] = {"tracking_number": "TRK%d" % order, "status": "in_transit",
                           "carrier": "UPS", "carrier_time": 1767225600000 + i}
    elif k == 2:
        base["type"] = "OrderUpdated"
        base["payload"] = {"note": "note %d" % i}
    else:
        base["type"] = "OrderCancelled"
        base["payload"] = {"reason": "customer", "cancelled_at": 1767225600000 + i}
    return json.dumps(base, separators=(",", ":"))


def versions_out_of_order(versions):
    """Orders whose versions are not 1..n, or, within a partition, do not
    increase with seq (replay lists entries in (partition, seq) order; the
    list is not sorted first, which would hide versions handed out in
    another order than the log's). versions: order -> [(partition, seq,
    version)] in replay order."""
    bad = []
    for oid, lst in versions.items():
        last = {}
        for p, seq, v in lst:
            prev = last.get(p)
            if prev is not None and not (seq > prev[0] and v > prev[1]):
                bad.append("%s: version %d at %d/%d after version %d at %d/%d"
                           % (oid, v, p, seq, prev[1], p, prev[0]))
                break
            last[p] = (seq, v)
        else:
            if sorted(v for _, _, v in lst) != list(range(1, len(lst) + 1)):
                bad.append("%s: versions %s" % (oid, sorted(v for _, _, v in lst)[:10]))
    return bad


def main():
    T.require_broker()
    rnd = random.Random(int(os.environ.get("WAYBILL_CRASH_SEED", "42")))
    with T.Topics("crash") as topics, T.TempDir() as tmp:
        lines = [make_event(i, i % ORDERS) for i in range(EVENTS)]
        # 10% of the lines are sent twice: once in place, once later on
        dup = rnd.sample(range(EVENTS), EVENTS // 10)
        out = list(lines)
        for d in dup:
            out.insert(rnd.randrange(d, len(out) + 1), lines[d])
        chunk_files = []
        per = (len(out) + CHUNKS - 1) // CHUNKS
        for c in range(CHUNKS):
            path = os.path.join(tmp, "chunk%02d.jsonl" % c)
            with open(path, "w") as f:
                f.write("\n".join(out[c * per:(c + 1) * per]) + "\n")
            chunk_files.append(path)
        T.diag("%d lines (%d unique events, %d orders) in %d chunks"
               % (len(out), EVENTS, ORDERS, CHUNKS))

        data = os.path.join(tmp, "ledger")
        flags = T.common_flags(topics)
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data,
                         "--ledger.stats.interval.ms=2000"] + flags,
                        os.path.join(tmp, "ledger.log")).start()

        ingest_ok = []

        def ingest():
            for path in chunk_files:
                r = T.run([T.exe("waybill-ingest"), "events", path] + flags)
                ingest_ok.append(r.returncode == 0)
                if r.returncode != 0:
                    T.diag("ingest %s: %s" % (path, r.stderr.decode()[-500:]))
                time.sleep(0.15)

        th = threading.Thread(target=ingest)
        th.start()
        kills = 0
        while th.is_alive() or kills < KILLS:
            time.sleep(rnd.uniform(0.7, 2.5))
            ledger.kill9()
            kills += 1
            ledger.start()
        th.join()
        T.ok(all(ingest_ok) and len(ingest_ok) == CHUNKS,
             "every chunk acknowledged by Kafka (%d runs)" % len(ingest_ok))
        T.ok(kills >= KILLS, "waybill-ledger killed with SIGKILL %d times" % kills)

        def caught_up():
            r = T.run([T.exe("waybill"), "stats", "--data-dir=" + data])
            if r.returncode != 0:
                return False
            return json.loads(r.stdout)["entries"] >= EVENTS

        T.ok(T.wait_for(caught_up, 300, 1.0), "ledger caught up")
        time.sleep(2)  # let it publish the tail
        rc = ledger.stop()
        T.ok(rc == 0, "ledger stopped cleanly (status %s)" % rc)
        if rc != 0:
            T.diag(ledger.log_tail())

        r = T.run([T.exe("waybill"), "replay", "--data-dir=" + data])
        T.ok(r.returncode == 0, "replay exit 0")
        seen = {}
        seqs = {}
        versions = {}   # order -> [(partition, seq, version)] in replay order
        for line in r.stdout.splitlines():
            e = json.loads(line)
            seen[e["event_id"]] = seen.get(e["event_id"], 0) + 1
            seqs.setdefault(e["partition"], []).append(e["seq"])
            versions.setdefault(e["order_id"], []).append((e["partition"], e["seq"], e["version"]))
        T.ok(len(seen) == EVENTS, "%d unique events in the ledger (want %d)" % (len(seen), EVENTS))
        twice = [k for k, v in seen.items() if v != 1]
        T.ok(not twice, "no event recorded twice (%d are)" % len(twice))
        gapless = all(s == list(range(1, len(s) + 1)) for s in seqs.values())
        T.ok(gapless, "seqs gapless in %d partitions" % len(seqs))
        bad = versions_out_of_order(versions)
        T.ok(not bad and len(versions) == ORDERS,
             "versions gapless for %d orders, increasing with seq in each partition (%d are not%s)"
             % (len(versions), len(bad), ": " + "; ".join(bad[:3]) if bad else ""))

        r = T.run([T.exe("waybill"), "verify", "--data-dir=" + data])
        T.ok(r.returncode == 0, "waybill verify: " + r.stdout.decode().strip())

        r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, topics.topic("ledger"), "ledger"])
        T.ok(r.returncode == 0, "read %s" % topics.topic("ledger"))
        pub = {}
        for line in r.stdout.decode().splitlines():
            p, seq = line.split()[:2]
            pub.setdefault(int(p), set()).add(int(seq))
        missing = 0
        for p, s in seqs.items():
            missing += len(set(s) - pub.get(p, set()))
        total = sum(len(v) for v in pub.values())
        T.ok(missing == 0, "orders.ledger holds every seq (%d missing; %d records, %d distinct)"
             % (missing, len(r.stdout.splitlines()), total))
        T.diag("restarts: %d; log tail:\n%s" % (kills, ledger.log_tail(3)))
    T.done()


if __name__ == "__main__":
    main()
