#!/usr/bin/env python3
"""Writes the seed corpora of the projector's fuzz targets.

    tests/fuzz/make_projector_corpus.py [BUILD_DIR]     (default: build)

projector_entry: LedgerEntry bodies (a real hash chain, made as
make_corpus.py makes them, from schemas/examples/all-types.jsonl) separated
by "--entry--", the way fuzz_projector_entry.c splits its input: every
event alone, the example Shopify order's whole history in version order
and in reverse, the same order with an entry of another order and one of
another merchant in between, and a delivered order followed by a return.

projector_record: every record the fold wrote while BUILD_DIR's
replay_projector_entry ran over those seeds (WB_FUZZ_RECORD_DIR), so they
are exactly what the store holds. Re-running replaces the seed-* files and
keeps everything else (crash reproducers). Output is deterministic.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_corpus  # noqa: E402  (zz, encode, write_dir, ledger_chain)

SEP = b"--entry--"
ORDER = "shopify:820982911946154508"


def bodies_of(tool, events):
    framed = make_corpus.encode(tool, "OrderEvent", events)
    return [m[make_corpus.HEADER_LEN:] for m in framed]


def chain(tool, events):
    """Ledger entries of events, versions 1.. in the order given."""
    return make_corpus.ledger_chain(
        [(b, v) for v, b in enumerate(bodies_of(tool, events), 1)])


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        make_corpus.ROOT, "build")
    tool = os.path.join(build, "tests", "wb-avro-tool")
    replay = os.path.join(build, "tests", "replay_projector_entry")
    for exe in (tool, replay):
        if not os.access(exe, os.X_OK):
            sys.exit("make_projector_corpus: %s not built (ninja -C %s)"
                     % (exe, build))
    with open(make_corpus.EXAMPLES) as f:
        events = [json.loads(line) for line in f if line.strip()]

    seeds = {}
    for e, entry in zip(events, chain(tool, events)):
        seeds["seed-one-%s-%s" % (e["channel"], e["type"])] = entry
    shop = sorted((e for e in events if e["order_id"] == ORDER),
                  key=lambda e: e["source_time"])
    seeds["seed-shopify-history"] = SEP.join(chain(tool, shop))
    seeds["seed-shopify-reversed"] = SEP.join(chain(tool, shop[::-1]))
    other_order = dict(shop[1], order_id="shopify:1")
    other_merchant = dict(shop[2], merchant="intruder.myshopify.com",
                          event_id="x:intruder")
    seeds["seed-shopify-intruders"] = SEP.join(
        chain(tool, [shop[0], other_order, other_merchant, shop[3]]))
    by_type = {e["type"]: e for e in shop}
    delivered = dict(by_type["ShipmentStatusChanged"],
                     event_id="x:delivered", source_time=1767398400000)
    delivered["payload"] = dict(delivered["payload"], status="delivered",
                                carrier_time=1767398400000)
    seeds["seed-shopify-delivered-return"] = SEP.join(chain(tool, [
        by_type["OrderPlaced"], by_type["PaymentStatusChanged"],
        by_type["FulfillmentCreated"], delivered,
        by_type["ReturnRequested"]]))
    make_corpus.write_dir("projector_entry", seeds)

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WB_FUZZ_RECORD_DIR=tmp)
        subprocess.run([replay, os.path.join(make_corpus.CORPUS,
                                             "projector_entry")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        records = {}
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                data = f.read()
            records["seed-" + hashlib.sha256(data).hexdigest()[:12]] = data
    make_corpus.write_dir("projector_record", records)


if __name__ == "__main__":
    main()
