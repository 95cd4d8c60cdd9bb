#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_shopify_map into tests/fuzz/corpus/shopify_map/
from the recorded Shopify samples (../shared/fixtures/channels/shopify/) and
the GraphQL fixtures (tests/fixtures/shopify-graphql/orders.json).

    tests/fuzz/make_shopify_corpus.py [FIXTURES_DIR]

A seed is one byte choosing the input kind (see fuzz_shopify_map.c; TOPICS
is the order of the topic table in ingestors/shopify_map.c) and the body.
Re-running replaces the seed-* files and keeps everything else (crash
reproducers). Output is deterministic.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus", "shopify_map")
TOPICS = ["orders/create", "orders/updated", "orders/paid", "orders/cancelled",
          "orders/fulfilled", "orders/partially_fulfilled", "orders/edited",
          "fulfillments/create", "fulfillments/update", "refunds/create",
          "returns/request", "returns/approve", "returns/decline", "returns/cancel",
          "returns/close", "returns/reopen", "returns/process"]
UNMAPPED, NODE, PAGE = len(TOPICS), len(TOPICS) + 1, len(TOPICS) + 2
SAMPLES = {
    "orders_create.json": ["orders/create"],
    "orders_updated.json": ["orders/updated", "orders/paid", "orders/fulfilled"],
    "orders_cancelled.json": ["orders/cancelled"],
    "fulfillments_create.json": ["fulfillments/create"],
    "fulfillments_update.json": ["fulfillments/update"],
    "refunds_create.json": ["refunds/create"],
    "returns_request.json": ["returns/request", "returns/decline", "returns/process"],
}
OWN = {
    # ours: an order edit, an exact 64-bit id, a shipment status, a decline
    "orders/edited": b'{"order_edit":{"id":78912328793123780,"committed_at":"2021-12-31T19:00:00-05:00",'
                     b'"order_id":820982911946154508,"line_items":{"additions":[{"id":1,"delta":1}],'
                     b'"removals":[]}}}',
    "orders/paid": b'{"id":820982911946154508,"currency":"JPY","created_at":"2026-01-01T00:00:00Z",'
                   b'"financial_status":"paid","total_price":"1000","line_items":[{"id":2,"title":"Tea",'
                   b'"quantity":2,"price":"500"}],"shipping_address":{"first_name":"A","last_name":"B"}}',
    "fulfillments/update": b'{"id":5,"order_id":6,"status":"success","shipment_status":"delivered",'
                           b'"tracking_numbers":["1Z"],"tracking_urls":[],"updated_at":"2026-01-03T10:00:00Z",'
                           b'"line_items":[{"id":7,"quantity":1,"sku":"S"}]}',
    "returns/decline": b'{"id":9,"order":{"id":10},"decline":{"reason":"FINAL_SALE"},"return_line_items":'
                       b'[{"quantity":1,"fulfillment_line_item":{"line_item":{"id":11,"sku":"X"}}}]}',
}


def write(name, kind, body):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([kind]) + body)


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "tests", "fixtures", "channels")
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("seed-"):
            os.remove(os.path.join(OUT, f))
    for sample, topics in SAMPLES.items():
        with open(os.path.join(fixtures, "shopify", sample), "rb") as f:
            body = f.read()
        for t in topics:
            write("seed-%s-%s" % (t.replace("/", "_"), sample), TOPICS.index(t), body)
    for t, body in OWN.items():
        write("seed-own-%s" % t.replace("/", "_"), TOPICS.index(t), body)
    write("seed-unmapped", UNMAPPED, b'{"id":1}')
    with open(os.path.join(ROOT, "tests", "fixtures", "shopify-graphql", "orders.json")) as f:
        nodes = json.load(f)
    for i in (0, 1, 2):
        write("seed-node-%d" % (i + 1), NODE, json.dumps(nodes[i], separators=(",", ":")).encode())
    page = {"data": {"orders": {"pageInfo": {"hasNextPage": True, "endCursor": "aWR4OjE="},
                                "edges": [{"cursor": "c", "node": nodes[0]}]}},
            "extensions": {"cost": {"requestedQueryCost": 202, "actualQueryCost": 12,
                                    "throttleStatus": {"maximumAvailable": 1000.0,
                                                       "currentlyAvailable": 988.0,
                                                       "restoreRate": 50.0}}}}
    write("seed-page", PAGE, json.dumps(page, separators=(",", ":")).encode())
    write("seed-page-throttled", PAGE,
          b'{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],'
          b'"extensions":{"cost":{"requestedQueryCost":202,"actualQueryCost":null,'
          b'"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":10,"restoreRate":50.0}}}}')


if __name__ == "__main__":
    main()
