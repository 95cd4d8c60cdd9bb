#!/usr/bin/env python3
"""A broker outage and restart under running services (design §10: nothing
accepted is lost or recorded twice through broker restarts; a webhook is
acknowledged only after Kafka has acknowledged it).

The test starts its own single-node broker (ops/kafka on a spare port and
a private data dir) so it can stop it; then:
1. shopify-webhooks and waybill-ledger run against it; webhooks are 200;
2. the broker is stopped: a webhook now gets 503 within the ack timeout
   (Kafka cannot confirm it; Shopify would retry), and nothing about it may
   be in the ledger as acknowledged;
3. the broker is started again: the same webhook redelivered gets 200, new
   ones too; the ledger, which stayed up, ends with every acknowledged
   webhook's facts exactly once and a chain that verifies.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import wbtest as T  # noqa: E402

PORT = int(os.environ.get("WAYBILL_TEST_RESTART_PORT", "19392"))
ACK_TIMEOUT_MS = 3000


def kafka(cmd, kdir, *args):
    env = dict(os.environ, WAYBILL_KAFKA_PORT=str(PORT),
               WAYBILL_KAFKA_CONTROLLER_PORT=str(PORT + 1), WAYBILL_KAFKA_DIR=kdir)
    return subprocess.run([os.path.join(T.ROOT, "ops", "kafka"), cmd] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)


def replay(data):
    r = T.run([T.exe("waybill"), "replay", "--data-dir=" + data])
    return [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []


def order_body(n):
    return json.dumps({
        "id": 820982911946100000 + n, "name": "#%d" % (2000 + n), "email": "r%d@example.com" % n,
        "currency": "USD", "created_at": "2026-01-07T00:00:00Z",
        "updated_at": "2026-01-07T00:01:00Z", "financial_status": "paid",
        "total_price": "10.00", "line_items": [{"id": 1, "title": "Mug", "sku": "MUG",
                                                "quantity": 1, "price": "10.00"}]},
        separators=(",", ":")).encode()


def main():
    T.require_broker()  # the shared one must exist for the suite; ours is separate
    with T.TempDir() as tmp:
        kdir = os.path.join(tmp, "kafka")
        r = kafka("up", kdir)
        if r.returncode != 0:
            T.ok(False, "own broker on port %d: %s" % (PORT, r.stderr.decode()[-400:]))
            T.done()
        boot = r.stdout.decode().strip().splitlines()[-1]
        T.BOOTSTRAP = boot  # every helper below talks to our broker
        import shopify_standin as S
        try:
            topics = T.Topics("restart", partitions=2)
            topics.__enter__()
            flags = T.common_flags(topics)
            data = os.path.join(tmp, "ledger")
            ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data] + flags,
                            os.path.join(tmp, "ledger.log")).start()
            rx = S.Receiver(topics, tmp, bootstrap=boot,
                            extra=["--ingest.http.ack.timeout.ms=%d" % ACK_TIMEOUT_MS])
            T.ok(rx.start(), "receiver up against our broker %s" % boot)

            acked = []
            for n in range(3):
                st, _ = rx.post(order_body(n), "orders/create", webhook_id="w%d" % n)
                if st == 200:
                    acked.append(n)
            T.ok(acked == [0, 1, 2], "before the outage: 3 webhooks answered 200")

            r = kafka("down", kdir)
            T.ok(r.returncode == 0, "broker stopped")
            st, secs = rx.post(order_body(3), "orders/create", webhook_id="w3")
            T.ok(st == 503 and secs < ACK_TIMEOUT_MS / 1000 + 0.5,
                 "broker down: 503 in %.1f s (ack timeout %.1f s): Shopify retries"
                 % (secs, ACK_TIMEOUT_MS / 1000))
            m = rx.metrics()
            T.ok(m.get("waybill_shopify_webhooks_kafka_timeouts_total", 0)
                 + m.get("waybill_shopify_webhooks_kafka_errors_total", 0) >= 1,
                 "counted as a Kafka timeout/error in /metrics")

            r = kafka("up", kdir)
            T.ok(r.returncode == 0, "broker started again")
            # Shopify's retry of w3, and two more
            ok200 = []
            for n in (3, 4, 5):
                for _ in range(20):  # the client reconnects within seconds
                    st, _ = rx.post(order_body(n), "orders/create", webhook_id="w%d" % n)
                    if st == 200:
                        ok200.append(n)
                        break
                    time.sleep(1)
            T.ok(ok200 == [3, 4, 5], "after the restart: the retried and new webhooks get 200")

            want = {"shopify:%d:%s" % (820982911946100000 + n, k)
                    for n in range(6) for k in ("placed", "payment:paid")}
            T.ok(T.wait_for(lambda: len(replay(data)) >= len(want), 120, 0.5),
                 "the ledger (up all along) caught up")
            time.sleep(2)
            entries = replay(data)
            ids = [e["event_id"] for e in entries]
            T.ok(sorted(ids) == sorted(want),
                 "every acknowledged webhook's facts exactly once (%d entries, want %d)"
                 % (len(ids), len(want)))
            r = T.run([T.exe("waybill"), "verify", "--data-dir=" + data])
            T.ok(r.returncode == 0, "waybill verify: " + r.stdout.decode().strip())
            T.ok(rx.proc.stop() == 0, "receiver stopped cleanly")
            rc = ledger.stop()
            T.ok(rc == 0, "ledger stopped cleanly (%s)" % rc)
            if rc != 0:
                T.diag(ledger.log_tail())
        finally:
            kafka("down", kdir, "--purge")
    T.done()


if __name__ == "__main__":
    main()
