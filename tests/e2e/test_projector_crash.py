#!/usr/bin/env python3
"""Projector crash test (issue 4): the ledger holds 100,000 entries for
10,000 orders (tests/e2e/projector_events.py: every kind of fact, a late
in_transit after delivered in each history). Projector A applies them
uninterrupted; projector B (another data dir, smaller batches) applies them
while being killed with SIGKILL at random moments, at least 3 times before
it has caught up, and restarted. Then:
  - B's read models (waybill-projector --dump: views, timelines, returns,
    lookups, checkpoints, offsets) are byte-identical to A's;
  - counts and a few facts hold (late in_transit did not regress delivery);
  - <prefix>status (compacted) holds, per order, a latest OrderStatus that
    matches the view (version, seq, statuses, tracking, total), and for a
    sample of orders the customer_status `waybill as-of` computes.

Sizes: WAYBILL_PROJ_CRASH_ORDERS (default 10000; entries = 10 x orders),
WAYBILL_PROJ_CRASH_KILLS (default 3).
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import projector_events  # noqa: E402

ORDERS = int(os.environ.get("WAYBILL_PROJ_CRASH_ORDERS", "10000"))
ENTRIES = 10 * ORDERS
KILLS = int(os.environ.get("WAYBILL_PROJ_CRASH_KILLS", "3"))


last_stat = projector_events.last_stat
position = projector_events.position


def projector(topics, tmp, name, extra=()):
    return projector_events.projector(T, topics, tmp, name, extra)


def dump(tmp, name):
    return projector_events.dump(T, tmp, name)


def preload(topics, tmp):
    """Ingest the events and let the ledger append and publish them all."""
    events = os.path.join(tmp, "events.jsonl")
    with open(events, "w") as f:
        for line in projector_events.lines(ORDERS):
            f.write(line + "\n")
    data = os.path.join(tmp, "ledger")
    ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data,
                     "--ledger.stats.interval.ms=1000"] + T.common_flags(topics),
                    os.path.join(tmp, "ledger.log")).start()
    r = T.run([T.exe("waybill-ingest"), "events", events] + T.common_flags(topics))
    T.ok(r.returncode == 0, "ingest %d events: %s" % (ENTRIES, r.stdout.decode().strip()))
    projector_events.wait_published(T, data, ENTRIES)
    rc = ledger.stop()
    T.ok(rc == 0, "ledger stopped (status %s)" % rc)
    return data


def main():
    T.require_broker()
    rnd = random.Random(int(os.environ.get("WAYBILL_PROJ_CRASH_SEED", "7")))
    with T.Topics("projcrash") as topics, T.TempDir() as tmp:
        ledger_dir = preload(topics, tmp)

        # A: uninterrupted
        a = projector(topics, tmp, "a").start()
        t0 = time.time()
        T.ok(T.wait_for(lambda: position(a) >= ENTRIES, 300, 0.1),
             "projector A applied every entry")
        secs = time.time() - t0
        T.ok(a.stop() == 0, "projector A stopped cleanly")
        T.diag("A: %d entries in %.1f s wall (apply_rate=%s/s as logged)"
               % (ENTRIES, secs, last_stat(a, "apply_rate")))

        # B: SIGKILL at random moments while it applies: each kill waits
        # for a random position further on, so every one lands mid-apply
        b = projector(topics, tmp, "b", ["--projector.batch.max=3000"]).start()
        kills = 0
        mid = []
        for k in range(KILLS):
            lo = ENTRIES * (k + 0.2) / (KILLS + 1)
            hi = ENTRIES * (k + 1) / (KILLS + 1)
            target = rnd.randint(int(lo), int(hi))
            T.wait_for(lambda: position(b) >= target, 300, 0.01)
            pos = position(b)
            if pos >= ENTRIES:
                break
            time.sleep(rnd.uniform(0, 0.05))
            b.kill9()
            kills += 1
            mid.append(pos)
            b.start()
        T.diag("B killed %d times at positions %s (of %d)" % (kills, mid, ENTRIES))
        T.ok(kills >= KILLS and all(0 < p < ENTRIES for p in mid),
             "B killed with SIGKILL %d times mid-apply" % kills)
        T.ok(T.wait_for(lambda: position(b) >= ENTRIES, 300, 0.1),
             "projector B applied every entry after the restarts")
        time.sleep(0.5)
        T.ok(b.stop() == 0, "projector B stopped cleanly")
        skipped = int(last_stat(b, "skipped") or 0)
        T.diag("B's last run skipped %d repeated entries" % skipped)

        da, db = dump(tmp, "a"), dump(tmp, "b")
        T.ok(da and da == db, "B's read models are identical to A's (%d dump lines)"
             % len(da.splitlines()))
        if da != db:
            la, lb = da.splitlines(), db.splitlines()
            for i, (x, y) in enumerate(zip(la, lb)):
                if x != y:
                    T.diag("first difference at line %d:\nA: %s\nB: %s" % (i, x[:300], y[:300]))
                    break
            T.diag("A has %d lines, B %d" % (len(la), len(lb)))

        recs = [json.loads(l) for l in da.splitlines()]
        views = {r["key"]: r["value"] for r in recs if r["model"] == "view"}
        timeline = [r for r in recs if r["model"] == "timeline"]
        seqs = sum(r["seq"] for r in recs if r["model"] == "checkpoint")
        T.ok(len(views) == ORDERS, "%d views" % len(views))
        T.ok(len(timeline) == ENTRIES, "%d timeline records" % len(timeline))
        T.ok(seqs == ENTRIES, "checkpoints sum to %d" % seqs)
        late = [r for r in timeline if r["value"].get("applied") is False]
        T.ok(len(late) == ORDERS, "each late in_transit is in the timeline, "
             "marked applied=false (%d)" % len(late))
        delivered = sum(1 for v in views.values()
                        if v["shipments"][0]["status"] == "delivered")
        T.ok(delivered == ORDERS, "no shipment regressed from delivered (%d of %d)"
             % (delivered, ORDERS))
        lookups = [r for r in recs if r["model"] == "lookup"]
        emails = [r for r in lookups if r["kind"] == "email"]
        T.ok(len(emails) == ORDERS and all(
            r["value"] == ("new%d@example.com" % (int(r["order_id"].split(":")[1]) - 900000000000)
                           if (int(r["order_id"].split(":")[1]) - 900000000000) % 5 == 0
                           else "customer%d@example.com" % (int(r["order_id"].split(":")[1]) - 900000000000))
            for r in emails), "one normalised email lookup per order, moved on change")

        # orders.status: the latest record per order matches the view
        r = T.run([os.path.join(T.BIN, "tests", "wb-topic-dump"), T.BOOTSTRAP,
                   topics.topic("status"), "status"])
        T.ok(r.returncode == 0, "read %s" % topics.topic("status"))
        latest = {}
        nrec = 0
        for line in r.stdout.decode().splitlines():
            p, off, key, js = line.split(" ", 3)
            nrec += 1
            prev = latest.get(key)
            if prev is None or int(off) > prev[0]:
                latest[key] = (int(off), json.loads(js))
        T.diag("%d status records for %d orders" % (nrec, len(latest)))
        bad = []
        for oid, v in views.items():
            st = latest.get(oid, (0, None))[1]
            want = {"version": v["version"], "ledger_seq": v["seq"],
                    "ledger_partition": v["partition"], "name": v["name"],
                    "order_status": v["order"]["status"],
                    "payment_status": v["payment"]["status"],
                    "tracking_numbers": [s["tracking_number"] for s in v["shipments"]],
                    "total": v["totals"]["total"], "merchant": v["merchant"],
                    "updated_at": v["updated_at"]}
            if st is None or any(st.get(k) != x for k, x in want.items()):
                bad.append((oid, st, want))
        T.ok(len(latest) == ORDERS and not bad,
             "the latest OrderStatus of each of %d orders matches its view (%d differ)"
             % (len(latest), len(bad)))
        for oid, st, want in bad[:3]:
            T.diag("%s: status %s, view %s" % (oid, st, want))
        sample = rnd.sample(sorted(views), 12)
        cs_bad = []
        for oid in sample:
            r = T.run([T.exe("waybill"), "as-of", oid, "--version",
                       str(views[oid]["version"]), "--data-dir=" + ledger_dir])
            cs = json.loads(r.stdout)["customer_status"] if r.returncode == 0 else None
            if cs != latest[oid][1]["customer_status"]:
                cs_bad.append((oid, cs, latest[oid][1]["customer_status"]))
        T.ok(not cs_bad, "customer_status in orders.status = waybill as-of's (%d orders)"
             % len(sample))
        for x in cs_bad:
            T.diag("differs: %s" % (x,))
    T.done()


if __name__ == "__main__":
    main()
