#!/usr/bin/env python3
"""Projector rebuild test (issue 4): read models rebuilt from ledger
position zero are identical to incrementally built ones, also after Kafka
has lost the ledger topic's old records.

  1. 20,000 entries (2,000 orders) through ingest -> ledger; `waybill
     backup` of the running ledger; projector A applies them from Kafka.
  2. Every record of <prefix>ledger is deleted (wb-delete-records, what
     retention does), then 5,000 more entries (500 new orders) plus an
     update of 200 old orders arrive; A continues.
  3. `--rebuild` from Kafka alone fails (exit 3) and says Kafka's earliest
     entry is past what is needed and to use --ledger-dir.
  4. B: `--rebuild --ledger-dir=BACKUP` (the first 20,000), then Kafka;
     C: `--rebuild --ledger-dir=LEDGER` (all of them; Kafka's records are
     skipped by seq). Both dumps equal A's (Kafka offsets aside: a store
     rebuilt from a ledger dir has none for partitions Kafka sent nothing
     since).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import projector_events  # noqa: E402

ORDERS1 = int(os.environ.get("WAYBILL_REBUILD_ORDERS", "2000"))
ORDERS2 = ORDERS1 // 4
UPDATED = ORDERS1 // 10
N1 = 10 * ORDERS1
N2 = 10 * ORDERS2 + UPDATED


position = projector_events.position


def projector(topics, tmp, name, extra=()):
    return projector_events.projector(T, topics, tmp, name, extra)


def run_to(proc, n, what):
    proc.start()
    T.ok(T.wait_for(lambda: position(proc) >= n, 300, 0.1),
         "%s reached position %d" % (what, n))
    rc = proc.stop()
    T.ok(rc == 0, "%s stopped cleanly (status %s)" % (what, rc))
    if rc != 0 or position(proc) < n:
        T.diag(proc.log_tail(8))


def dump(tmp, name):
    # offsets aside: see the docstring
    return projector_events.dump(T, tmp, name, offsets=False)


def ingest(topics, tmp, name, lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = T.run([T.exe("waybill-ingest"), "events", path] + T.common_flags(topics))
    T.ok(r.returncode == 0, "ingest %s: %s" % (name, r.stdout.decode().strip()))


def wait_published(data, n):
    projector_events.wait_published(T, data, n)


def main():
    T.require_broker()
    with T.Topics("projrebuild") as topics, T.TempDir() as tmp:
        data = os.path.join(tmp, "ledger")
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data,
                         "--ledger.stats.interval.ms=1000"] + T.common_flags(topics),
                        os.path.join(tmp, "ledger.log")).start()
        ingest(topics, tmp, "batch1.jsonl", list(projector_events.lines(ORDERS1)))
        wait_published(data, N1)

        backup = os.path.join(tmp, "backup")
        r = T.run([T.exe("waybill"), "backup", backup, "--data-dir=" + data])
        T.ok(r.returncode == 0 and r.stdout.decode().startswith("ok: backup of %d entries" % N1),
             "waybill backup of the running ledger: " + (r.stdout + r.stderr).decode().strip())

        a = projector(topics, tmp, "a")
        run_to(a, N1, "A (from Kafka)")

        r = T.run([os.path.join(T.BIN, "tests", "wb-delete-records"), T.BOOTSTRAP,
                   topics.topic("ledger")])
        T.ok(r.returncode == 0, "deleted every record of %s:\n%s"
             % (topics.topic("ledger"), (r.stdout + r.stderr).decode().strip()))

        more = [json.dumps(e, separators=(",", ":"))
                for k in range(10)
                for e in (projector_events.history(o)[k]
                          for o in range(ORDERS1, ORDERS1 + ORDERS2))]
        for o in range(UPDATED):
            e = projector_events.history(o)[2]
            e["event_id"] = "e2e:%d:late-update" % o
            e["source_time"] += 200 * 3600 * 1000
            e["payload"]["note"] = "updated after the delete"
            more.append(json.dumps(e, separators=(",", ":")))
        ingest(topics, tmp, "batch2.jsonl", more)
        wait_published(data, N1 + N2)
        T.ok(ledger.stop() == 0, "ledger stopped")

        run_to(a, N1 + N2, "A (continues from its offsets)")

        b = projector(topics, tmp, "b", ["--rebuild"])
        b.start()
        T.wait_for(lambda: not b.alive(), 60, 0.2)
        rc = b.stop()
        log = open(b.log_path, "rb").read().decode("utf-8", "replace")
        T.ok(rc == 3, "--rebuild from Kafka alone stops with status 3 (got %s)" % rc)
        T.ok("earliest available entry" in log and "--ledger-dir" in log,
             "and says Kafka lost the entries and to use --ledger-dir")
        T.diag([l for l in log.splitlines() if "event=fatal" in l][-1:])

        b = projector(topics, tmp, "b", ["--rebuild", "--ledger-dir=" + backup])
        run_to(b, N1 + N2, "B (rebuilt from the backup, then Kafka)")
        c = projector(topics, tmp, "c", ["--rebuild", "--ledger-dir=" + data])
        run_to(c, N1 + N2, "C (rebuilt from the ledger data dir)")
        blog = open(b.log_path, "rb").read().decode("utf-8", "replace")
        T.ok("event=rebuilt" in blog and "entries=%d " % N1 in blog,
             "B folded %d entries from the backup" % N1)

        da, db, dc = dump(tmp, "a"), dump(tmp, "b"), dump(tmp, "c")
        views = sum(1 for l in da.splitlines() if '"model":"view"' in l)
        T.ok(views == ORDERS1 + ORDERS2, "A holds %d views" % views)
        for name, d in (("B", db), ("C", dc)):
            same = d == da
            T.ok(same, "%s's rebuilt models are identical to A's (%d lines)"
                 % (name, len(d.splitlines())))
            if not same:
                la, lb = da.splitlines(), d.splitlines()
                for i, (x, y) in enumerate(zip(la, lb)):
                    if x != y:
                        T.diag("line %d:\nA: %s\n%s: %s" % (i, x[:300], name, y[:300]))
                        break
                T.diag("A %d lines, %s %d" % (len(la), name, len(lb)))
    T.done()


if __name__ == "__main__":
    main()
