#!/usr/bin/env python3
"""Every channel through the whole pipeline into one ledger (issue 3, item
6): the recorded Shopify samples posted with valid signatures under their
topics, every webhook delivered twice and in reverse order; the Amazon
sandbox responses polled (twice) from the SP-API stand-in; a POS export
ingested (twice). The ledger must then hold exactly the expected events of
every channel, each once, with a chain that verifies.

The expected events of each channel are the ones its own integration test
pins down (shopify_standin.EXPECTED, test_amazon_poll.EXPECTED,
test_pos.EXPECTED); this test checks that together, through waybill-ledger,
nothing is lost, doubled or mixed up.

Then two changes of a fact already recorded must be recorded too and show
in the order view (`waybill as-of`, the projector's fold): a
fulfillments/update that brings another tracking number (a new
FulfillmentCreated of the same fulfillment), and a POS receipt exported
again with an extra line (a new OrderPlaced and payment).
"""
import collections
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import wbtest as T  # noqa: E402
import shopify_standin as SH  # noqa: E402
import amazon_standin as AM  # noqa: E402
import test_amazon_poll as AP  # noqa: E402
import test_pos as PO  # noqa: E402


def replay(data):
    r = T.run([T.exe("waybill"), "replay", "--data-dir=" + data])
    return [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []


def as_of(data, order, version):
    r = T.run([T.exe("waybill"), "as-of", order, "--version", str(version),
               "--data-dir=" + data])
    if r.returncode != 0:
        T.diag("as-of %s: %s" % (order, r.stderr.decode()[-300:]))
        return {}
    return json.loads(r.stdout)


def tracking_update():
    """The fulfillment sample with another tracking number."""
    f = json.loads(SH.fixture("fulfillments_update.json"))
    f["tracking_number"] = "1z827wk74631"
    f["tracking_numbers"] = ["1z827wk74631"]
    f["tracking_url"] = None
    f["tracking_urls"] = []
    return json.dumps(f).encode()


def main():
    T.require_broker()
    want_total = len(SH.EXPECTED) + len(AP.EXPECTED) + len(PO.EXPECTED)
    with T.Topics("channels", partitions=4) as topics, T.TempDir() as tmp:
        flags = T.common_flags(topics)
        data = os.path.join(tmp, "ledger")
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data] + flags,
                        os.path.join(tmp, "ledger.log")).start()

        # Shopify: every sample under its topics, twice, in reverse order
        rx = SH.Receiver(topics, tmp)
        T.ok(rx.start(), "shopify-webhooks receiver up")
        statuses = []
        for round_ in range(2):
            for i, (name, topic) in reversed(list(enumerate(SH.DELIVERIES))):
                statuses.append(rx.post(SH.fixture(name), topic, webhook_id="wh-%d" % i,
                                        event_id="ev-%d" % i)[0])
        T.ok(statuses.count(200) == len(statuses),
             "%d Shopify deliveries (each twice, reverse order): all 200" % len(statuses))
        rx.proc.stop()

        # Amazon: the sandbox and example responses, polled twice
        env = AP.Env(topics, tmp)
        try:
            for n in range(2):
                r = env.poll(env.state("a"))
                T.ok(r.returncode == 0, "amazon-poll --once #%d: %s" % (n + 1, AP.one_line(r.stdout)))
        finally:
            env.srv.stop()

        # POS: one CSV export, ingested twice
        csv = os.path.join(tmp, "export.csv")
        with open(csv, "w") as f:
            f.write(PO.CSV)
        for n in range(2):
            r = T.run([T.exe("waybill-ingest"), "pos", csv, "--ingest.pos.merchant=acme"] + flags)
            T.ok(r.returncode == 0, "waybill-ingest pos #%d: %s" % (n + 1, r.stdout.decode().strip()))

        # the ledger: every channel's expected events, each exactly once
        T.ok(T.wait_for(lambda: len(replay(data)) >= want_total, 90, 0.5),
             "ledger reached %d entries" % want_total)
        time.sleep(2)  # anything extra would show up now
        entries = replay(data)
        changes(tmp, topics, flags, data, entries)
        by = collections.defaultdict(list)
        for e in entries:
            by[e["channel"]].append(e)
        ok, why = SH.matches_expected([(e["event_id"], e["type"]) for e in by["shopify"]])
        T.ok(ok, "Shopify: each of the %d expected facts exactly once (%s)" % (len(SH.EXPECTED), why))
        got = sorted((e["order_id"], e["event_id"], e["type"]) for e in by["amazon"])
        T.ok(got == sorted(AP.EXPECTED), "Amazon: exactly the %d expected events (got %d)"
             % (len(AP.EXPECTED), len(got)))
        got = sorted((e["order_id"], e["event_id"], e["type"]) for e in by["pos"])
        T.ok(got == sorted(PO.EXPECTED), "POS: exactly the %d expected events (got %d)"
             % (len(PO.EXPECTED), len(got)))
        counts = collections.Counter(e["event_id"] for e in entries)
        T.ok(len(entries) == want_total and max(counts.values()) == 1,
             "%d entries, none twice, nothing else (channels: %s)"
             % (len(entries), {k: len(v) for k, v in by.items()}))
        seqs = collections.defaultdict(list)
        for e in entries:
            seqs[e["partition"]].append(e["seq"])
        T.ok(all(s == list(range(1, len(s) + 1)) for s in seqs.values()), "seqs gapless")
        r = T.run([T.exe("waybill"), "verify", "--data-dir=" + data])
        T.ok(r.returncode == 0, "waybill verify: " + r.stdout.decode().strip())
        rc = ledger.stop()
        T.ok(rc == 0, "ledger stopped cleanly (%s)" % rc)
        if rc != 0:
            T.diag(ledger.log_tail())
    T.done()


def changes(tmp, topics, flags, data, entries):
    """A tracking update and a receipt re-export after everything else:
    each one new fact, recorded and shown by the fold."""
    fid = SH.O1 + ":fulfillment:123456:"
    rx = SH.Receiver(topics, tmp, name="wh2")
    T.ok(rx.start(), "shopify-webhooks receiver up again")
    st = rx.post(tracking_update(), "fulfillments/update", webhook_id="wh-t",
                 event_id="ev-t")[0]
    rx.proc.stop()
    re_csv = os.path.join(tmp, "reexport.csv")
    with open(re_csv, "w") as f:
        f.write(PO.REEXPORT)
    r = T.run([T.exe("waybill-ingest"), "pos", re_csv, "--ingest.pos.merchant=acme"] + flags)
    T.ok(st == 200 and r.returncode == 0, "tracking update (%s) and re-export (%s) sent"
         % (st, r.stdout.decode().strip()))
    old = set(e["event_id"] for e in entries)
    T.ok(T.wait_for(lambda: len(replay(data)) >= len(entries) + 3, 60, 0.5),
         "the ledger recorded 3 more entries")
    time.sleep(1)
    new = [e for e in replay(data) if e["event_id"] not in old]
    got = sorted((e["type"], e["event_id"].rsplit(":", 1)[0]) for e in new)
    T.ok(got == sorted([("FulfillmentCreated", fid[:-1]),
                        ("OrderPlaced", "pos:store12-000124:placed"),
                        ("PaymentStatusChanged", "pos:store12-000124:payment:pending")]),
         "new: a FulfillmentCreated of 123456, the receipt's OrderPlaced and payment (%s)" % got)
    sh = [e for e in new if e["type"] == "FulfillmentCreated"]
    v = as_of(data, SH.O1, sh[0]["version"]) if sh else {}
    fuls = (v.get("fulfillment") or {}).get("fulfillments") or []
    T.ok(len(fuls) == 1 and fuls[0].get("tracking_numbers") == ["1z827wk74631"] and
         fuls[0].get("carrier") == "UPS" and len(fuls[0].get("lines") or []) == 5,
         "view: one fulfillment 123456 with the new tracking number (%s)" % fuls)
    T.ok(sorted(s.get("tracking_number") for s in v.get("shipments") or []) ==
         ["1z827wk74630", "1z827wk74631"], "view: a shipment per tracking number")
    pv = [e for e in new if e["type"] == "PaymentStatusChanged"]
    v = as_of(data, "pos:store12-000124", pv[0]["version"]) if pv else {}
    T.ok(len(v.get("lines") or []) == 2 and
         ((v.get("totals") or {}).get("total") or {}).get("amount") == 750,
         "view: receipt 000124 has both lines and the new total (%s, %s)"
         % (v.get("lines"), v.get("totals")))
    return new


if __name__ == "__main__":
    main()
