#!/usr/bin/env python3
"""`waybill as-of` (design §8): the order view as it stood at a version or
a time, computed by the projector's own fold from the ledger.

Three order histories (tests/e2e/projector_events.py) go through ingest ->
ledger -> projector. Then for one order:
  - as-of the last version shows what the projector stored (every facet);
  - as-of version 1 is the order just placed (processing, cancellable);
  - as-of version 8 (after the late in_transit) is still delivered;
  - as-of --at the recorded_at of version 3 is version 3;
  - a missing order and a version past the last one are errors (exit 1);
  - it reads a `waybill backup` just as well.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import projector_events  # noqa: E402

ORDER = "shopify:900000000001"


def asof(data, *args):
    r = T.run([T.exe("waybill"), "as-of"] + list(args) + ["--data-dir=" + data])
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr.decode()


def main():
    T.require_broker()
    with T.Topics("projasof") as topics, T.TempDir() as tmp:
        flags = T.common_flags(topics)
        data = os.path.join(tmp, "ledger")
        # versions 1-3 of each order first, the rest once they are recorded,
        # so that recorded_at separates version 3 from version 4
        lines = list(projector_events.lines(3))
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data] + flags,
                        os.path.join(tmp, "ledger.log")).start()
        for part, chunk in (("first", lines[:9]), ("rest", lines[9:])):
            events = os.path.join(tmp, part + ".jsonl")
            with open(events, "w") as f:
                f.write("\n".join(chunk) + "\n")
            r = T.run([T.exe("waybill-ingest"), "events", events] + flags)
            T.ok(r.returncode == 0, "ingest %d events" % len(chunk))
            T.wait_for(lambda: json.loads(T.run([T.exe("waybill"), "stats", "--data-dir="
                                                 + data]).stdout or b'{"entries":0}')
                       ["entries"] >= (9 if part == "first" else 30), 60, 0.2)
        proj = T.Proc([T.exe("waybill-projector"), "--data-dir=" + os.path.join(tmp, "p"),
                       "--projector.http.listen=off", "--projector.stats.interval.ms=100"]
                      + flags, os.path.join(tmp, "p.log")).start()
        T.ok(T.wait_for(lambda: "position=30 " in open(proj.log_path, "rb").read().decode(
            "utf-8", "replace"), 120, 0.2), "the projector applied all 30 entries")
        T.ok(proj.stop() == 0, "projector stopped")
        T.ok(ledger.stop() == 0, "ledger stopped")

        r = T.run([T.exe("waybill-projector"), "--dump",
                   "--data-dir=" + os.path.join(tmp, "p")])
        stored = next(json.loads(l)["value"] for l in r.stdout.decode().splitlines()
                      if '"model":"view"' in l and json.loads(l)["key"] == ORDER)
        rc, last, err = asof(data, ORDER, "--version", "10")
        T.ok(rc == 0, "as-of the last version (%s)" % err.strip())
        keys = ["order_id", "merchant", "name", "email", "version", "seq", "partition",
                "order", "payment", "shipments", "refunds", "returns", "actions",
                "totals", "shipping_address", "snapshot", "updated_at", "recorded_at"]
        diff = [k for k in keys if last.get(k) != stored.get(k)]
        T.ok(not diff, "as-of the last version = the projector's view (differs: %s)" % diff)
        T.ok(last["as_of"]["version"] == 10 and last["as_of"]["of_versions"] == 10,
             "as_of says version 10 of 10")

        rc, v1, _ = asof(data, ORDER, "--version", "1")
        T.ok(rc == 0 and v1["version"] == 1 and v1["customer_status"] == "processing"
             and v1["eligibility"]["can_cancel"]["allowed"] is True
             and v1["shipments"] == [],
             "version 1: just placed, processing, cancellable")
        rc, v8, _ = asof(data, ORDER, "--version", "8")
        T.ok(rc == 0 and v8["shipments"][0]["status"] == "delivered"
             and v8["customer_status"] == "delivered"
             and v8["eligibility"]["can_cancel"]["reason"] == "already_shipped",
             "version 8 (after the late in_transit): still delivered")

        r = T.run([T.exe("waybill"), "replay", "--order", ORDER, "--data-dir=" + data])
        recorded = [json.loads(l)["recorded_at"] for l in r.stdout.decode().splitlines()]
        rc, v3, _ = asof(data, ORDER, "--at", str(recorded[2]))
        want = sum(1 for t in recorded if t <= recorded[2])
        T.ok(rc == 0 and v3["version"] == want and v3["as_of"]["version"] == want
             and want == 3,
             "as-of --at the recorded_at of version 3: version %d, nothing "
             "recorded later" % want)
        rc, _, err = asof(data, "shopify:404", "--version", "1")
        T.ok(rc == 1 and "no order" in err, "a missing order: exit 1 (%s)" % err.strip())
        rc, _, err = asof(data, ORDER, "--version", "11")
        T.ok(rc == 1 and "only 10 versions" in err, "version 11 of 10: exit 1 (%s)" % err.strip())
        rc, _, err = asof(data, ORDER)
        T.ok(rc == 2, "neither --at nor --version: usage (exit 2)")

        backup = os.path.join(tmp, "backup")
        r = T.run([T.exe("waybill"), "backup", backup, "--data-dir=" + data])
        T.ok(r.returncode == 0, "waybill backup: " + (r.stdout + r.stderr).decode().strip())
        rc, b10, _ = asof(backup, ORDER, "--version", "10")
        T.ok(rc == 0 and all(b10.get(k) == last.get(k) for k in keys),
             "as-of on the backup gives the same view")
    T.done()


if __name__ == "__main__":
    main()
