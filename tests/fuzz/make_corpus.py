#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/.

    tests/fuzz/make_corpus.py [BUILD_DIR]     (default: build)

Seeds come from schemas/examples/all-types.jsonl; Avro bytes are made by
the project's own encoder (BUILD_DIR/tests/wb-avro-tool encode NAME, which
prints the framed message as hex), so they are exactly what the services
write. LedgerEntry seeds form a real hash chain (design: hash =
SHA-256(prev_hash || BE64 seq || zz(partition) zz(version) zz(recorded_at)
|| event)). It also writes event.dict, the libFuzzer dictionary of the
JSON targets. Re-running replaces the seed-* files and keeps everything else
(crash reproducers, named for what they found). Output is deterministic.
"""
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
EXAMPLES = os.path.join(ROOT, "schemas", "examples", "all-types.jsonl")
HEADER_LEN = 10  # C3 01 + 8-byte fingerprint
SCHEMA_IDS = {"OrderEvent": 0, "OrderCommand": 1, "LedgerEntry": 2,
              "OrderStatus": 3}  # enum wb_schema_id

ORDER = "shopify:820982911946154508"
COMMANDS = [
    {"action_id": "act-1", "merchant": "acme.myshopify.com", "order_id": ORDER,
     "kind": "cancel", "parameters": {"reason": "customer"},
     "requester": "api:alice", "idempotency_key": "k-1",
     "expected_version": 3, "requested_at": 1767226000000},
    {"action_id": "act-2", "merchant": "acme.myshopify.com", "order_id": ORDER,
     "kind": "change_address",
     "parameters": {"address": {"name": "Jon Snow", "line1": "1 Wall St",
                                "city": "Winterfell", "country_code": "GB"},
                    "amount": {"amount": 1000, "currency": "USD"},
                    "lines": [{"line_id": "866550311766439020", "sku": None,
                               "quantity": 1}],
                    "note": "gate code 1234"},
     "requester": "api:bob", "idempotency_key": "k-2",
     "expected_version": None, "requested_at": 1767226000001,
     "correlation_id": "req-9"},
]
STATUSES = [
    {"order_id": ORDER, "merchant": "acme.myshopify.com", "channel": "shopify",
     "name": "#1001", "version": 3, "ledger_partition": 0, "ledger_seq": 7,
     "customer_status": "confirmed", "order_status": "open",
     "payment_status": "paid", "fulfillment_status": "unfulfilled",
     "tracking_numbers": [], "total": {"amount": 21988, "currency": "USD"},
     "updated_at": 1767226000000},
    {"order_id": "pos:42", "merchant": "acme", "channel": "pos", "name": None,
     "version": 9, "ledger_partition": 11, "ledger_seq": 123456789,
     "customer_status": "shipped", "order_status": "open",
     "payment_status": None, "fulfillment_status": "fulfilled",
     "tracking_numbers": ["1Z999AA10123456784", "9400110200881234567890"],
     "total": None, "updated_at": 1767229999999},
]
CONFIGS = {
    "seed-config": "# waybill.conf\nkafka.bootstrap.servers = 127.0.0.1:9092\n"
                   "topic.prefix=orders.\n\n  log.level =debug  \n"
                   "kafka.linger.ms=5\r\nledger.data.dir=/var/lib/waybill\n",
    "seed-config-bad": "topic.prefix=orders.\nno equals sign here\n",
    "seed-time-rfc3339": "2026-11-27T13:09:28.123+01:00",
    "seed-time-utc": "2026-01-01T00:00:00Z",
    "seed-time-epoch": "1767225600000",
    "seed-time-date": "1999-12-31",
}


def zz(v):
    """Avro zig-zag varint of a long."""
    z = ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode(tool, name, values):
    """Framed Avro messages of values, by wb-avro-tool."""
    lines = "".join(json.dumps(v, separators=(",", ":")) + "\n"
                    for v in values)
    res = subprocess.run([tool, "encode", name], input=lines.encode(),
                         capture_output=True, check=False)
    if res.returncode != 0:
        sys.exit("make_corpus: wb-avro-tool encode %s: %s"
                 % (name, res.stderr.decode(errors="replace")))
    return [bytes.fromhex(h) for h in res.stdout.decode().split()]


def write_dir(name, files):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for fname, data in sorted(files.items()):
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def ledger_chain(events):
    """LedgerEntry bodies of events appended to partition 3 in order."""
    out, prev = [], bytes(32)
    for seq, (body, version) in enumerate(events, start=1):
        partition, recorded_at = 3, 1767225601000 + seq
        h = hashlib.sha256(prev + seq.to_bytes(8, "big") + zz(partition)
                           + zz(version) + zz(recorded_at) + body).digest()
        out.append(zz(partition) + zz(seq) + zz(version) + zz(recorded_at)
                   + zz(32) + prev + zz(32) + h + body)
        prev = h
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    tool = os.path.join(build, "tests", "wb-avro-tool")
    if not os.access(tool, os.X_OK):
        sys.exit("make_corpus: %s not built (ninja -C %s)" % (tool, build))
    with open(EXAMPLES) as f:
        lines = [line.strip() for line in f if line.strip()]
    events = [json.loads(line) for line in lines]
    types = [e["type"] for e in events]
    framed = encode(tool, "OrderEvent", events)
    bodies = [m[HEADER_LEN:] for m in framed]

    write_dir("avro_event", {"seed-" + t: m for t, m in zip(types, framed)})
    write_dir("event_json", {"seed-%s.json" % t: l + "\n"
                             for t, l in zip(types, lines)})

    # the first four events of the example order, versions 1..4
    chain = ledger_chain([(b, v) for v, b in enumerate(bodies[:4], 1)])
    write_dir("ledger_entry", {"seed-%d-%s" % (i + 1, types[i]): e
                               for i, e in enumerate(chain)})

    schemas = {}
    for name, msgs in (("OrderEvent", [framed[0], framed[-1]]),
                       ("LedgerEntry", [b"\xc3\x01" + bytes(8) + e
                                        for e in chain[:2]]),
                       ("OrderCommand", encode(tool, "OrderCommand",
                                               COMMANDS)),
                       ("OrderStatus", encode(tool, "OrderStatus",
                                              STATUSES))):
        for i, m in enumerate(msgs, 1):
            schemas["seed-%s-%d" % (name, i)] = (
                bytes([SCHEMA_IDS[name]]) + m[HEADER_LEN:])
    write_dir("avro_schemas", schemas)

    # ingest: a whole file; envelope fields the ingestor fills in, CRLF and
    # a blank line; a line over the target's 1024-byte cap, then a good one
    sparse = []
    for e in events[1:3]:
        e = dict(e)
        del e["ingest_time"]
        e["source"] = None
        sparse.append(json.dumps(e, separators=(",", ":")))
    long_line = dict(events[0])
    long_line["correlation_id"] = "x" * 1100
    write_dir("ingest_line", {
        "seed-all-types.jsonl": "\n".join(lines) + "\n",
        "seed-defaults-crlf.jsonl": "\r\n".join(sparse) + "\r\n\r\n",
        "seed-long-line.jsonl": json.dumps(long_line) + "\n" + lines[4],
    })

    write_dir("config", CONFIGS)
    write_dict()


def write_dict():
    """libFuzzer dictionary for the JSON targets: every field, record and
    enum symbol name of OrderEvent.avsc as a JSON string."""
    with open(os.path.join(ROOT, "schemas", "OrderEvent.avsc")) as f:
        schema = json.load(f)
    words = set()

    def walk(t):
        if isinstance(t, list):
            for x in t:
                walk(x)
        elif isinstance(t, dict):
            for k in ("name",):
                if k in t:
                    words.add(t[k])
            words.update(t.get("symbols", []))
            for fld in t.get("fields", []):
                words.add(fld["name"])
                walk(fld["type"])
            for k in ("type", "items"):
                if isinstance(t.get(k), (dict, list)):
                    walk(t[k])

    walk(schema)
    with open(os.path.join(HERE, "event.dict"), "w") as f:
        f.write("# generated by make_corpus.py from OrderEvent.avsc\n")
        for w in sorted(words):
            f.write('"\\"%s\\""\n' % w)


if __name__ == "__main__":
    main()
