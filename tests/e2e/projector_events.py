"""Synthetic order histories for the projector's e2e tests and benchmark:
ten events per order covering every kind of fact the fold handles, with a
late carrier scan (in_transit after delivered) in each history; and the
helpers the projector's e2e tests share (processes, stats, dumps).

    python3 tests/e2e/projector_events.py ORDERS > events.jsonl
"""
import json
import os
import sys

T0 = 1767225600000  # 2026-01-01
H = 3600 * 1000


def money(amount, currency="USD"):
    return {"amount": amount, "currency": currency}


def history(o):
    """The ten events of order o, in the order the channel sends them."""
    oid = "shopify:%d" % (900000000000 + o)
    merchant = "m%d" % (o % 3)
    tn = "1Z%08dX" % o
    t = T0 + o * 1000

    def ev(k, typ, at, payload):
        return {"event_id": "e2e:%d:%d" % (o, k), "merchant": merchant,
                "order_id": oid, "channel": "shopify", "type": typ,
                "source_time": at, "ingest_time": at + 300,
                "source": "e2e", "payload": payload}

    lines = [{"line_id": "L%d" % o, "sku": "SKU-%d" % (o % 97),
              "title": "Thing %d" % (o % 97), "quantity": 1 + o % 3,
              "unit_price": money(1000 + o % 500)}]
    total = (1000 + o % 500) * (1 + o % 3)
    addr = {"name": "Customer %d" % o, "company": None,
            "line1": "%d Main St" % o, "line2": None, "city": "Springfield",
            "region": "IL", "postal_code": "627%02d" % (o % 100),
            "country_code": "US", "phone": None}
    out = [
        ev(0, "OrderPlaced", t, {
            "name": "#%d" % (1000 + o), "email": "Customer%d@Example.com" % o,
            "phone": None, "currency": "USD",
            "totals": {"subtotal": money(total), "shipping": None, "tax": None,
                       "discounts": None, "total": money(total)},
            "lines": lines, "shipping_address": addr, "placed_at": t}),
        ev(1, "PaymentStatusChanged", t + 60000,
           {"status": "paid", "amount_paid": money(total)}),
        ev(2, "OrderUpdated", t + 120000,
           {"email": ("new%d@example.com" % o) if o % 5 == 0 else None,
            "phone": None, "note": "note %d" % o, "lines": None,
            "totals": None}),
        ev(3, "FulfillmentCreated", t + 24 * H, {
            "fulfillment_id": "F%d" % o,
            "lines": [{"line_id": "L%d" % o, "sku": "SKU-%d" % (o % 97),
                       "quantity": 1 + o % 3}],
            "carrier": "UPS", "tracking_numbers": [tn],
            "tracking_urls": ["https://ups.example/track/" + tn]}),
        ev(4, "ShipmentStatusChanged", t + 30 * H, {
            "fulfillment_id": "F%d" % o, "tracking_number": tn,
            "carrier": "UPS", "status": "in_transit",
            "carrier_time": t + 30 * H - 5000, "location": "Hub A",
            "estimated_delivery": t + 72 * H}),
        ev(5, "ShipmentStatusChanged", t + 60 * H, {
            "fulfillment_id": "F%d" % o, "tracking_number": tn,
            "carrier": "UPS", "status": "out_for_delivery",
            "carrier_time": t + 60 * H, "location": "Springfield",
            "estimated_delivery": t + 64 * H}),
        ev(6, "ShipmentStatusChanged", t + 63 * H, {
            "fulfillment_id": "F%d" % o, "tracking_number": tn,
            "carrier": "UPS", "status": "delivered",
            "carrier_time": t + 63 * H - 1000, "location": "Front door",
            "estimated_delivery": None}),
        # the carrier's late scan: older than delivered, arrives after it
        ev(7, "ShipmentStatusChanged", t + 40 * H, {
            "fulfillment_id": "F%d" % o, "tracking_number": tn,
            "carrier": "UPS", "status": "in_transit",
            "carrier_time": t + 40 * H, "location": "Hub B",
            "estimated_delivery": t + 70 * H}),
    ]
    k = o % 4
    if k == 0:
        out += [ev(8, "ReturnRequested", t + 100 * H, {
                    "return_id": "R%d" % o,
                    "lines": [{"line_id": "L%d" % o, "sku": None, "quantity": 1}],
                    "reason": "too small"}),
                ev(9, "ReturnApproved", t + 101 * H,
                   {"return_id": "R%d" % o, "lines": [], "reason": None})]
    elif k == 1:
        out += [ev(8, "RefundIssued", t + 100 * H, {
                    "refund_id": "RF%d" % o, "amount": money(500),
                    "lines": [], "restock": False, "reason": "damaged"}),
                ev(9, "RefundIssued", t + 101 * H, {
                    "refund_id": "RFE%d" % o, "amount": money(300, "EUR"),
                    "lines": [], "restock": False, "reason": None})]
    elif k == 2:
        params = {"reason": None, "address": None, "amount": money(100),
                  "lines": [], "note": None}
        out += [ev(8, "ActionRequested", t + 100 * H, {
                    "action_id": "A%d" % o, "kind": "refund",
                    "parameters": params, "requester": "agent:e2e",
                    "idempotency_key": "k%d" % o}),
                ev(9, "ActionSucceeded", t + 101 * H, {
                    "action_id": "A%d" % o, "kind": "refund",
                    "idempotency_key": "k%d" % o, "channel_ref": None})]
    else:
        out += [ev(8, "ChannelSnapshotObserved", t + 100 * H, {
                    "observed_at": t + 100 * H,
                    "channel_updated_at": t + 99 * H,
                    "financial_status": "PARTIALLY_REFUNDED",
                    "fulfillment_status": "fulfilled", "cancelled": False,
                    "total": money(total), "tracking_numbers": [tn]}),
                ev(9, "OrderCancelled", t + 102 * H, {
                    "reason": "other", "cancelled_at": t + 102 * H,
                    "note": None})]
    return out


def lines(orders):
    """Every event, round-robin over orders (each order's own events stay
    in order), as JSON lines."""
    hs = [history(o) for o in range(orders)]
    for k in range(10):
        for h in hs:
            yield json.dumps(h[k], separators=(",", ":"))


# ---- helpers for the e2e tests (T is tests/wbtest.py) -----------------------

def last_stat(proc, key):
    """The value of key in a projector's last stats line, or None."""
    try:
        with open(proc.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(text):
        if "event=stats" in line:
            for kv in line.split():
                if kv.startswith(key + "="):
                    return kv.split("=", 1)[1]
    return None


def position(proc):
    v = last_stat(proc, "position")
    return int(v) if v is not None else -1


def projector(T, topics, tmp, name, extra=()):
    """A waybill-projector (no HTTP) with its store in tmp/name."""
    return T.Proc([T.exe("waybill-projector"),
                   "--data-dir=" + os.path.join(tmp, name),
                   "--projector.http.listen=off",
                   "--projector.stats.interval.ms=100"]
                  + T.common_flags(topics) + list(extra),
                  os.path.join(tmp, name + ".log"))


def dump(T, tmp, name, offsets=True):
    """waybill-projector --dump of tmp/name (without Kafka offsets if
    offsets is false)."""
    r = T.run([T.exe("waybill-projector"), "--dump",
               "--data-dir=" + os.path.join(tmp, name)])
    if r.returncode != 0:
        T.diag(r.stderr.decode())
    out = r.stdout.decode()
    if not offsets:
        out = "\n".join(l for l in out.splitlines() if '"model":"offset"' not in l)
    return out


def wait_published(T, data, n):
    """Waits until the ledger in data holds n entries and published all."""
    def done():
        r = T.run([T.exe("waybill"), "stats", "--data-dir=" + data])
        if r.returncode != 0:
            return False
        s = json.loads(r.stdout)
        return s["entries"] >= n and all(
            p["published_seq"] == p["head_seq"] for p in s["partitions"])
    T.ok(T.wait_for(done, 300, 0.5), "the ledger holds and published %d entries" % n)


if __name__ == "__main__":
    for line in lines(int(sys.argv[1])):
        print(line)
