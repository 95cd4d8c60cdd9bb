#!/usr/bin/env python3
"""`waybill-ingest shopify-webhooks` against the real broker, on a private
topic prefix:

- HMAC: only the correctly signed request (current or previous secret)
  gets 2xx; a 1-bit flip of the MAC or the body, a missing header, a hex
  digest, re-serialised JSON and a wrong secret get 401, counted on
  /metrics, and nothing of them reaches Kafka;
- a body over the cap gets 413, by Content-Length and while a chunked body
  streams; /healthz, 404, 405; /metrics is Prometheus text;
- an authentic body that cannot be mapped (bad JSON, a topic not mapped, no
  order id) is answered 200 after its DLQ record (raw body, headers
  waybill.error and waybill.source) is in Kafka;
- every recorded sample posted under its topics puts exactly the expected
  events on <prefix>events, keyed by order id; one webhook yields several;
- a 20-digit id of our own survives unchanged as the key;
- ledger.record.max.bytes at its edge: an order whose OrderPlaced encodes
  to exactly the limit is recorded, a byte more and the whole webhook goes
  to the DLQ (200), none of its events to <prefix>events;
- bodies near the 1 MiB cap (malformed, or a valid order too big to
  record) get 200 and a DLQ record cut to 768 KiB with
  waybill.truncated=<bytes>, never 503; an empty body's reason says so;
- a record refused at once is logged with its topic;
- a dead broker at start-up fails fast with a clear message; a topic that
  disappears under a running receiver gives 503 within the ack timeout,
  counted as a Kafka timeout.
"""
import http.client
import json
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import wbtest as T  # noqa: E402
import shopify_standin as S  # noqa: E402

ACK_TIMEOUT_MS = 2500


def test_hmac(rx, topics):
    body = S.fixture("orders_create.json")
    good = S.sign(body, "new-secret")
    mac = bytearray(__import__("base64").b64decode(good))
    mac[5] ^= 0x10
    flipped = __import__("base64").b64encode(bytes(mac)).decode()
    hexdigest = __import__("hmac").new(b"new-secret", body, "sha256").hexdigest()
    reserialised = json.dumps(json.loads(body)).encode()
    body_flip = bytearray(body)
    body_flip[100] ^= 0x01
    before = rx.metrics()
    cases = [
        ("current secret", body, None, "new-secret", 200),
        ("previous secret (rotation)", body, None, "old-secret", 200),
        ("1-bit flip in the MAC", body, flipped, None, 401),
        ("1-bit flip in the body", bytes(body_flip), good, None, 401),
        ("missing header", body, False, None, 401),
        ("hex digest instead of base64", body, hexdigest, None, 401),
        ("re-serialised JSON, original MAC", reserialised, good, None, 401),
        ("wrong secret", body, None, "not-the-secret", 401),
        ("empty header", body, "", None, 401),
    ]
    for what, b, hdr, secret, want in cases:
        status, _ = rx.post(b, "orders/create", secret=secret or "new-secret",
                            hmac_header=hdr, webhook_id="hmac-" + what)
        T.ok(status == want, "HMAC %s: %d (want %d)" % (what, status, want))
    after = rx.metrics()
    bad = sum(1 for c in cases if c[4] == 401)
    got = after["waybill_shopify_webhooks_unauthorized_total"] - \
        before["waybill_shopify_webhooks_unauthorized_total"]
    T.ok(got == bad, "/metrics counts the %d unauthorized (%d)" % (bad, got))


def test_http_edges(rx):
    status, text, hdrs = rx.get("/healthz")
    T.ok(status == 200 and text == "ok\n", "GET /healthz 200")
    T.ok(rx.get("/nope")[0] == 404, "unknown path 404")
    status, _, hdrs = rx.get("/webhooks/shopify")
    T.ok(status == 405 and hdrs.get("Allow") == "POST", "GET on the webhook path: 405, Allow: POST")
    status, text, hdrs = rx.get("/metrics")
    lines = text.split("\n")
    T.ok(status == 200 and hdrs.get("Content-Type", "").startswith("text/plain; version=0.0.4")
         and text.endswith("\n"), "/metrics is Prometheus text 0.0.4")
    names = ["received", "unauthorized", "accepted", "dlq", "kafka_timeouts"]
    T.ok(all(any(l.startswith("# TYPE waybill_shopify_webhooks_%s_total counter" % n) for l in lines)
             for n in names) and any(l.startswith("waybill_shopify_events_produced_total ") for l in lines),
         "counters received, unauthorized, accepted, dlq, kafka_timeouts, events produced")


def test_too_large(rx, cap):
    big = b'{"id": 1, "pad": "' + b"x" * (cap + 10) + b'"}'
    before = rx.metrics()["waybill_shopify_webhooks_too_large_total"]
    status, _ = rx.post(big, "orders/create")
    T.ok(status == 413, "body over the cap (Content-Length %d): 413" % len(big))
    # chunked: no Content-Length, so the cap is enforced while it streams
    c = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=30)

    def chunks():
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]
    c.request("POST", "/webhooks/shopify", chunks(),
              {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": S.SHOP,
               "X-Shopify-Hmac-Sha256": S.sign(big, "new-secret")}, encode_chunked=True)
    r = c.getresponse()
    r.read()
    c.close()
    T.ok(r.status == 413, "chunked body over the cap: 413 (%d)" % r.status)
    after = rx.metrics()["waybill_shopify_webhooks_too_large_total"]
    T.ok(after - before == 2, "too_large counted twice (%d)" % (after - before))
    status, _ = rx.post(S.fixture("orders_create.json"), "orders/create", webhook_id="after-413")
    T.ok(status == 200, "a normal webhook after them: 200")


def test_dlq(rx, topics):
    cases = [
        ("bad JSON", b'{"id": 820982911946154508, "line_items": [', "orders/create", "invalid JSON"),
        ("topic not mapped", S.fixture("orders_create.json"), "products/update", "not one Waybill maps"),
        ("no order id", b'{"name": "#1", "total_price": "1.00"}', "orders/updated", "no usable id"),
        ("empty body", b"", "orders/paid", "\tempty body"),
    ]
    for what, body, topic, _ in cases:
        status, _ = rx.post(body, topic, webhook_id="dlq-" + topic)
        T.ok(status == 200, "authentic but unmappable (%s): 200" % what)
    lines = S.dump(topics.topic("dlq"), "dlq") or []
    for what, body, topic, reason in cases:
        hit = [l for l in lines if ("topic=%s " % topic) in l and reason in l]
        T.ok(len(hit) == 1 and hit[0].split(" ")[2] == str(len(body)),
             "DLQ record for %s: raw body, waybill.source and waybill.error" % what)
        if len(hit) != 1:
            T.diag("\n".join(lines))
    m = rx.metrics()
    T.ok(m["waybill_shopify_webhooks_dlq_total"] == len(cases), "dlq counted")


def big_order(oid, titles, full=False):
    """orders/create for order oid with one line per title length; full:
    lines with every field of the sample and 100-char SKUs (fewer lines
    to the MiB: the mapper takes at most 1,000)."""
    o = json.loads(S.fixture("orders_create.json"))
    o["id"] = oid
    o["admin_graphql_api_id"] = "gid://shopify/Order/%d" % oid
    keep = ("id", "price", "quantity", "sku", "title")
    line = {k: v for k, v in o["line_items"][0].items() if full or k in keep}
    if full:
        line["sku"] = "SKU-" + "9" * 96
    o["line_items"] = []
    for i, n in enumerate(titles):
        li = dict(line, id=487817672276000000 + i, title=("t%05d" % i + "x" * n)[:n])
        o["line_items"].append(li)
    return json.dumps(o).encode()


def dlq_headers(topic):
    """{webhook key: (len, headers text)} of a DLQ topic, through kcat."""
    r = T.run(["kcat", "-b", T.BOOTSTRAP, "-C", "-t", topic, "-e", "-o", "beginning", "-q",
               "-f", "%k\t%S\t%h\n"])
    out = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        k, n, h = (line.split("\t", 2) + ["", ""])[:3]
        out[k] = (int(n) if n.isdigit() else -1, h)
    return out


def test_record_max(rx, topics):
    """OrderPlaced at ledger.record.max.bytes is recorded; a byte more is not."""
    limit = 262144
    ids = [820982911946100001, 820982911946100002, 820982911946100003]
    titles = [255] * 1000
    status, _ = rx.post(big_order(ids[0], titles), "orders/create", webhook_id="max-0")
    dlq = S.dump(topics.topic("dlq"), "dlq") or []
    hit = [l for l in dlq if "webhook_id=max-0" in l]
    m = re.search(r"is (\d+) bytes, over ledger\.record\.max\.bytes \(%d\)" % limit,
                  hit[0] if hit else "")
    T.ok(status == 200 and m, "1,000 lines of 255-char titles: %d, DLQ record with the size (%s)"
         % (status, m.group(1) if m else hit))
    size = int(m.group(1)) if m else limit + 1
    # shrink titles (each stays >= 64 chars: a 2-byte length either way)
    over = size - limit
    for i in range(len(titles) - 1, -1, -1):
        cut = min(over, titles[i] - 64)
        titles[i] -= cut
        over -= cut
    status_at, _ = rx.post(big_order(ids[1], titles), "orders/create", webhook_id="max-1")
    titles[0] += 1
    status_over, _ = rx.post(big_order(ids[2], titles), "orders/create", webhook_id="max-2")
    evs = S.events_on(topics)
    placed = [e for e in evs if e[2] == "shopify:%d:placed" % ids[1]]
    T.ok(status_at == 200 and len(placed) == 1,
         "OrderPlaced of exactly %d bytes: 200 and on <prefix>events" % limit)
    dlq = S.dump(topics.topic("dlq"), "dlq") or []
    hit = [l for l in dlq if "webhook_id=max-2" in l]
    T.ok(status_over == 200 and len(hit) == 1 and "is %d bytes" % (limit + 1) in hit[0]
         and "shopify:%d:placed" % ids[2] in hit[0],
         "one byte more: 200 after a DLQ record naming the event and its size")
    T.ok(not [e for e in evs if str(ids[2]) in e[1]] and not [e for e in evs if str(ids[0]) in e[1]],
         "nothing of the refused webhooks on <prefix>events (not even their payment events)")
    T.ok(not [l for l in dlq if "webhook_id=max-1" in l], "the one at the limit is not in the DLQ")


def test_near_cap(rx, topics):
    """Bodies near the 1 MiB cap: 200 and a capped DLQ record, never 503."""
    n = 1040000
    head = b'{"id": 820982911946100009, "line_items": [{"title": "'
    bad = head + b"x" * (n - len(head))
    t0 = time.time()
    status, _ = rx.post(bad, "orders/create", webhook_id="near-cap-bad")
    T.ok(status == 200, "authentic malformed %d-byte body: 200 (%.1f s)" % (len(bad), time.time() - t0))
    one = len(big_order(820982911946100010, [255], True))
    per = len(big_order(820982911946100010, [255, 255], True)) - one
    big = big_order(820982911946100010, [255] * (1 + (n - one) // per), True)
    status2, _ = rx.post(big, "orders/create", webhook_id="near-cap-big")
    T.ok(status2 == 200 and 1000000 < len(big) <= 1048576,
         "authentic valid orders/create of %d bytes: 200" % len(big))
    hdrs = dlq_headers(topics.topic("dlq"))
    for key, body, why in (("near-cap-bad", bad, "invalid JSON"),
                           ("near-cap-big", big, "ledger.record.max.bytes")):
        got = hdrs.get(key, (-1, ""))
        T.ok(got[0] == 768 * 1024 and "waybill.truncated=%d" % len(body) in got[1] and why in got[1],
             "%s: DLQ record of its first 768 KiB, waybill.truncated=%d, reason %r (%d)"
             % (key, len(body), why, got[0]))
        if why not in got[1]:
            T.diag(got[1][:600])
    T.ok(not [e for e in S.events_on(topics) if "820982911946100010" in e[1]],
         "none of the too-big order's events on <prefix>events")


def test_refused_logged(tmp, topics):
    """A record librdkafka refuses at once is logged with its topic."""
    rx = S.Receiver(topics, tmp, name="qfull",
                    extra=["--kafka.queue.buffering.max.messages=1",
                           "--ingest.http.ack.timeout.ms=%d" % ACK_TIMEOUT_MS])
    T.ok(rx.start(), "receiver with a one-record queue")
    status, _ = rx.post(S.fixture("orders_create.json"), "orders/create", webhook_id="qfull")
    rc = rx.proc.stop()
    with open(rx.log) as f:
        log = f.read()
    want = "event=produce_refused topic=%s " % topics.topic("events")
    T.ok(status == 503 and want in log, "queue full: 503, produce_refused names topic=%s"
         % topics.topic("events"))
    if want not in log:
        T.diag(log[-1500:])
    T.ok(rc == 0, "stopped cleanly (%s)" % rc)


def test_samples(rx, topics):
    for i, (name, topic) in enumerate(S.DELIVERIES):
        status, secs = rx.post(S.fixture(name), topic, webhook_id="wh-%d" % i, event_id="ev-%d" % i)
        T.ok(status == 200, "%s as %s: 200 in %.0f ms" % (name, topic, secs * 1000))
    evs = S.events_on(topics)
    ids = sorted(set((e[2], e[3]) for e in evs))
    good, why = S.matches_expected(ids)
    T.ok(good, "the samples' distinct events on <prefix>events are exactly the expected 14 (%s)" % why)
    T.ok(all(e[1] == e[2].split(":")[0] + ":" + e[2].split(":")[1] for e in evs),
         "every record keyed by its order id")
    per_order = {}
    for e in evs:
        per_order.setdefault(e[1], set()).add(e[0])
    T.ok(all(len(p) == 1 for p in per_order.values()), "each order's events on one partition")
    m = rx.metrics()
    T.ok(m["waybill_shopify_events_produced_total"] == len(evs),
         "events_produced_total = records on the topic (%d)" % len(evs))


def test_exact_id(rx, topics):
    body = (b'{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508",'
            b'"name":"#1001","email":"jon@example.com","currency":"USD",'
            b'"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:05:00Z",'
            b'"financial_status":"paid","total_price":"219.88","line_items":[{"id":866550311766439020,'
            b'"title":"IPod Nano - 8GB","sku":"IPOD-342-N","quantity":1,"price":"198.00"}]}')
    status, _ = rx.post(body, "orders/paid", webhook_id="exact-id")
    T.ok(status == 200, "our own 20-digit-range order: 200")
    evs = [e for e in S.events_on(topics) if "820982911946154508" in e[1]]
    T.ok(evs and all(e[1] == "shopify:820982911946154508" for e in evs)
         and ("shopify:820982911946154508:payment:paid" in [e[2] for e in evs]),
         "820982911946154508 survives unchanged (key and event_id)")


def test_keepalive_concurrency(rx):
    """Many webhooks on keep-alive connections at once, all acknowledged."""
    body = S.fixture("orders_create.json")
    results = []

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=30)
        for i in range(25):
            results.append(rx.post(body, "orders/create", webhook_id="ka-%d-%d" % (k, i), conn=c)[0])
        c.close()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    T.ok(len(results) == 200 and all(s == 200 for s in results),
         "200 webhooks on 8 keep-alive connections: all 200 (%d)" % sum(s == 200 for s in results))
    T.ok(rx.metrics()["waybill_shopify_webhooks_waiting"] == 0, "nothing left waiting")


def test_dead_broker(tmp, topics):
    rx = S.Receiver(topics, tmp, name="dead", bootstrap="127.0.0.1:1")
    t = time.time()
    rx.proc.start()
    rc = rx.proc.p.wait(60)
    with open(rx.log) as f:
        log = f.read()
    T.ok(rc == 1 and time.time() - t < 30 and "metadata" in log,
         "dead broker at start-up: exit 1 in %.1f s with a clear message" % (time.time() - t))
    if rc != 1:
        T.diag(log[-800:])


def test_kafka_gone(rx, topics):
    """The topic disappears under the running receiver: 503 in time."""
    topics._run("--delete")
    body = S.fixture("orders_create.json")
    status, secs = rx.post(body, "orders/create", webhook_id="gone")
    T.ok(status == 503 and secs < ACK_TIMEOUT_MS / 1000 + 1.5,
         "Kafka does not acknowledge: 503 in %.2f s (ack timeout %.1f s)" % (secs, ACK_TIMEOUT_MS / 1000))
    m = rx.metrics()
    T.ok(m["waybill_shopify_webhooks_kafka_timeouts_total"] + m["waybill_shopify_webhooks_kafka_errors_total"] >= 1,
         "counted as a Kafka timeout/error")


def main():
    T.require_broker()
    cap = 65536
    with T.Topics("shopwh", partitions=4) as topics, T.TempDir() as tmp:
        rx = S.Receiver(topics, tmp, extra=["--ingest.http.max.body.bytes=%d" % cap,
                                            "--ingest.http.ack.timeout.ms=%d" % ACK_TIMEOUT_MS])
        T.ok(rx.start(), "receiver listening on port %s" % rx.port)
        if not rx.port:
            T.diag(open(rx.log).read()[-2000:])
            T.done()
        test_http_edges(rx)
        test_hmac(rx, topics)
        before = S.events_on(topics)
        T.ok(len(before) == 6, "only the 2 authentic webhooks reached Kafka (3 events each; %d)" % len(before))
        test_too_large(rx, cap)
        test_dlq(rx, topics)
        # a clean topic for the samples
        with T.Topics("shopwh2", partitions=4) as t2:
            rx2 = S.Receiver(t2, tmp, name="wh2",
                             extra=["--ingest.http.ack.timeout.ms=%d" % ACK_TIMEOUT_MS])
            T.ok(rx2.start(), "second receiver on a clean prefix")
            test_samples(rx2, t2)
            test_exact_id(rx2, t2)
            test_keepalive_concurrency(rx2)
            test_record_max(rx2, t2)
            test_near_cap(rx2, t2)
            rc = rx2.proc.stop()
            T.ok(rc == 0, "SIGTERM: drained and exited 0 (%s)" % rc)
        test_refused_logged(tmp, topics)
        test_dead_broker(tmp, topics)
        test_kafka_gone(rx, topics)
        rc = rx.proc.stop()
        T.ok(rc == 0, "receiver stopped cleanly (%s)" % rc)
        if rc != 0:
            T.diag(rx.proc.log_tail())
    T.done()


if __name__ == "__main__":
    main()
