#!/usr/bin/env python3
"""Shopify webhooks and polls through the whole pipeline into the ledger
(real broker, private prefix, waybill-ledger, `waybill replay`):

1. Every recorded sample posted under its topics, every webhook delivered
   twice and in reverse order (the redelivery with the same webhook id, as
   Shopify retries) — except refunds/create, which is "lost": the ledger
   holds each of its facts exactly once.
2. shopify-poll --once against the stand-in Admin API repairs the lost
   webhook: the refund is in the ledger (source shopify-poll), and nothing
   the webhooks brought is doubled. The late refunds/create webhook is
   then deduplicated too.
3. A webhook answered 200 is in the ledger even though waybill-ingest was
   killed with SIGKILL right after the answer (no restart): the answer
   came after Kafka's acknowledgement.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import wbtest as T  # noqa: E402
import shopify_standin as S  # noqa: E402


def replay(data):
    r = T.run([T.exe("waybill"), "replay", "--data-dir=" + data])
    if r.returncode != 0:
        T.diag("replay: " + r.stderr.decode()[-500:])
        return []
    return [json.loads(line) for line in r.stdout.splitlines()]


def settle(data, want=None, timeout=60):
    """Waits until the ledger holds want entries, or stops growing."""
    last, stable, end = -1, 0, time.time() + timeout
    while time.time() < end:
        n = len(replay(data))
        if want is not None and n >= want:
            return n
        stable = stable + 1 if n == last else 0
        if want is None and stable >= 4 and n > 0:
            return n
        last = n
        time.sleep(0.5)
    return last


def main():
    T.require_broker()
    with T.Topics("shopled", partitions=4) as topics, T.TempDir() as tmp, S.GraphQLStandin() as g:
        data = os.path.join(tmp, "ledger")
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data] + T.common_flags(topics),
                        os.path.join(tmp, "ledger.log")).start()
        rx = S.Receiver(topics, tmp)
        T.ok(rx.start(), "receiver up")

        # 1. twice, in reverse order, refunds/create lost
        deliveries = [d for d in S.DELIVERIES if d[1] != "refunds/create"]
        statuses = []
        for round_ in range(2):
            for i, (name, topic) in reversed(list(enumerate(deliveries))):
                statuses.append(rx.post(S.fixture(name), topic, webhook_id="wh-%d" % i,
                                        event_id="ev-%d" % i)[0])
        T.ok(statuses.count(200) == 2 * len(deliveries),
             "%d deliveries (each twice, reverse order): all 200" % len(statuses))
        n = settle(data, want=13)
        entries = replay(data)
        ids = [(e["event_id"], e["type"]) for e in entries]
        want13 = [x for x in S.EXPECTED if x[1] != "RefundIssued"]
        saved, S.EXPECTED[:] = list(S.EXPECTED), want13
        good, why = S.matches_expected(ids)
        S.EXPECTED[:] = saved
        T.ok(good and n == 13, "ledger holds each of the 13 facts exactly once (%s; %d entries)" % (why, n))

        # 2. the poll repairs the lost refund
        env = dict(os.environ, WAYBILL_SHOPIFY_ACCESS_TOKEN="shpat_test_token")
        r = T.run([T.exe("waybill-ingest"), "shopify-poll", "--once",
                   "--ingest.shopify.api.url=" + g.url, "--ingest.shopify.shop=" + S.SHOP,
                   "--ingest.state.dir=" + os.path.join(tmp, "state")] + T.common_flags(topics), env=env)
        T.ok(r.returncode == 0, "shopify-poll --once: %s" % r.stdout.decode().strip())
        settle(data)
        entries = replay(data)
        by_id = {}
        for e in entries:
            by_id.setdefault(e["event_id"], []).append(e)
        refund = by_id.get(S.O1 + ":refund:890088186047892400", [])
        T.ok(len(refund) == 1 and refund[0]["source"] == "shopify-poll",
             "the lost refunds/create webhook is repaired by the poll (source %s)" %
             (refund[0]["source"] if refund else None))
        dup = [k for k, v in by_id.items() if len(v) != 1]
        T.ok(not dup, "no event recorded twice after the poll (%s)" % dup[:3])
        hooks = [e for e in entries if e["order_id"] == S.O1 and e["source"] == "shopify-webhooks"]
        T.ok(len(hooks) == 6, "the webhooks' facts of that order stay as they were (6 from webhooks)")
        snaps = [e for e in entries if e["type"] == "ChannelSnapshotObserved"]
        T.ok(len(snaps) == 7, "a snapshot per polled order (%d)" % len(snaps))
        before = len(entries)
        status, _ = rx.post(S.fixture("refunds_create.json"), "refunds/create", webhook_id="late-refund")
        T.ok(status == 200, "the late refunds/create webhook: 200")
        time.sleep(2)
        after = settle(data)
        T.ok(after == before, "and it is deduplicated (%d entries, was %d)" % (after, before))

        # 3. 200, then SIGKILL at once: still in the ledger
        body = (b'{"id":820982911946154599,"name":"#1099","email":"k@example.com","currency":"USD",'
                b'"created_at":"2026-01-07T00:00:00Z","updated_at":"2026-01-07T00:01:00Z",'
                b'"financial_status":"paid","total_price":"10.00","line_items":[{"id":1,'
                b'"title":"Mug","sku":"MUG","quantity":1,"price":"10.00"}]}')
        status, _ = rx.post(body, "orders/create", webhook_id="kill-9")
        rx.proc.kill9()
        T.ok(status == 200, "orders/create answered 200, then waybill-ingest got SIGKILL")
        settle(data, want=after + 2)
        got = [e["event_id"] for e in replay(data) if e["order_id"] == "shopify:820982911946154599"]
        T.ok(sorted(got) == ["shopify:820982911946154599:payment:paid",
                             "shopify:820982911946154599:placed"],
             "its events are in the ledger without a restart (%s)" % got)

        r = T.run([T.exe("waybill"), "verify", "--data-dir=" + data])
        T.ok(r.returncode == 0, "waybill verify: " + r.stdout.decode().strip())
        rc = ledger.stop()
        T.ok(rc == 0, "ledger stopped cleanly (%s)" % rc)
    T.done()


if __name__ == "__main__":
    main()
