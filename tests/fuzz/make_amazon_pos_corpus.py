#!/usr/bin/env python3
"""Writes the seed corpora of the Amazon and POS fuzz targets:

    tests/fuzz/make_amazon_pos_corpus.py

  corpus/amazon_map/  {"order": ..., "items": ...} pairs from Amazon's
                      recorded payloads (../shared/fixtures/channels/amazon,
                      tests/fixtures/amazon) and the status variants the
                      unit tests use
  corpus/pos_csv/     the exports of tests/integration/test_pos.py and a
                      few quoting cases
  corpus/pos_ndjson/  the same exports as NDJSON
Re-running replaces the seed-* files and keeps everything else (crash
reproducers). Output is deterministic.
"""
import csv
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("WAYBILL_FIXTURES",
                        os.path.join(ROOT, "tests", "fixtures", "channels"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import test_pos  # noqa: E402  (its CSV exports)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def load(path):
    with open(path) as f:
        return json.load(f)


def amazon():
    a = os.path.join(SHARED, "amazon")
    sandbox = load(os.path.join(a, "getOrders.sandbox-TEST_CASE_200.json"))
    example = load(os.path.join(a, "getOrders.example.json"))
    order = load(os.path.join(a, "getOrder.example.json"))["payload"]
    ex_items = load(os.path.join(a, "getOrderItems.example.json"))["payload"]["OrderItems"]
    sb_items = load(os.path.join(ROOT, "tests", "fixtures", "amazon",
                                 "getOrderItems.sandbox-TEST_CASE_200.json"))["payload"]["OrderItems"]
    o1, o2 = sandbox["payload"]["Orders"]
    ex = example["payload"]["Orders"][0]
    dump = lambda v: json.dumps(v, indent=1, sort_keys=False)
    write("amazon_map", "sandbox-unshipped", dump({"order": o1, "items": sb_items}))
    write("amazon_map", "sandbox-no-items", dump({"order": o2, "items": None}))
    write("amazon_map", "example-jpy", dump({"order": ex, "items": ex_items}))
    write("amazon_map", "getorder-example", dump({"order": order, "items": []}))
    write("amazon_map", "getorders-page", dump(sandbox))
    for st in ["PendingAvailability", "Pending", "PartiallyShipped", "Shipped",
               "InvoiceUnconfirmed", "Canceled", "Unfulfillable"]:
        v = dict(o1, OrderStatus=st)
        items = [dict(sb_items[0], QuantityOrdered=3, QuantityShipped=2,
                      ItemPrice={"CurrencyCode": "USD", "Amount": "17.95"})]
        write("amazon_map", "status-" + st, dump({"order": v, "items": items}))
    yen = [dict(ex_items[0], ItemPrice={"CurrencyCode": "JPY", "Amount": "2599.00"}),
           dict(ex_items[1], ItemPrice={"CurrencyCode": "GBP", "Amount": "17.95"})]
    write("amazon_map", "mixed-currencies", dump({"order": dict(ex, OrderStatus="Shipped"),
                                                  "items": yen}))
    write("amazon_map", "time-sandbox", sandbox["payload"]["CreatedBefore"])
    write("amazon_map", "money", "92233720368547758.07")


def pos():
    exports = {"export": test_pos.CSV, "bad": test_pos.BAD,
               "quoted": ("store_id,receipt_no,line_no,kind,title,qty,unit_price,"
                          "currency,occurred_at,email\r\n"
                          's1,r1,1,sale,"two\nline",1,1.00,EUR,2026-01-07T10:00:00Z,\n'
                          's1,r1,2,sale,"",1,2.00,EUR,2026-01-07T10:00:00Z,""\n'
                          's1,r2,1,sale,"never closed,1,1.00,EUR,2026-01-07T10:00:00Z,\n')}
    for name, text in exports.items():
        write("pos_csv", name, text)
        out = io.StringIO()
        for rec in csv.DictReader(io.StringIO(text)):
            if None in rec:  # a short or long row: keep it as a raw string
                out.write(json.dumps({"store_id": str(rec.get(None))}) + "\n")
                continue
            out.write(json.dumps({k: v for k, v in rec.items() if v}) + "\n")
        write("pos_ndjson", name, out.getvalue())
    write("pos_ndjson", "numbers",
          '{"store_id":"s","receipt_no":"A","line_no":1,"kind":"sale","qty":2,'
          '"unit_price":4.5,"currency":"USD","occurred_at":"2026-01-07T10:00:00Z"}\n'
          '{"store_id":"s","receipt_no":"B","line_no":1,"kind":"return","qty":1,'
          '"unit_price":"4.50","currency":"JPY","occurred_at":"2026-01-07T10:00:00Z",'
          '"restock":false,"original_receipt_no":"A"}\n')


if __name__ == "__main__":
    amazon()
    pos()
