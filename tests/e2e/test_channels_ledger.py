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


if __name__ == "__main__":
    main()
