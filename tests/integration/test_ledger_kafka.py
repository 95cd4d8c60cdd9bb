#!/usr/bin/env python3
"""waybill-ledger against the real broker, on a private topic prefix.

1. Bad input, produced straight to <prefix>events with kcat between runs of
   waybill-ingest (valid events): not Avro (JSON), a C3 01 header with the
   wrong fingerprint, a truncated event, an event whose order_id belongs to
   another channel, one whose type does not name its payload, one with an
   out-of-range payload union branch, an event over ledger.record.max.bytes
   (set to 1000), a NULL value (tombstone) and a zero-length value; most in
   partitions that also carry valid events before and after them, some in a
   partition that carries nothing else. Also one valid event in a
   non-minimal (but legal) Avro encoding. Every valid event must be in
   `waybill replay` exactly once; every bad record in <prefix>dlq exactly
   once, key and value as received, with a specific `waybill.error` and a
   `waybill.source` naming topic/partition@offset; and the ledger's stored
   offsets (`waybill stats`) must be the end offsets of <prefix>events.
2. Redelivery: the same events again (one of them now in its canonical
   encoding) change nothing: same entries, gapless versions.
3. Restart: SIGTERM, start again, new events and one more bad record:
   seqs continue gapless, `waybill verify` passes, <prefix>ledger holds
   every seq, nothing is sent to the DLQ twice. Also valid events the
   ledger must refuse: another merchant's event for acme's order
   shopify:820982911946154508, and an event reusing a recorded event_id
   for another order; both go to the DLQ (and `replay --order` shows no
   foreign entry). A recorded event again with another payload is skipped
   but logged (event=duplicate_differs) and counted.
4. `waybill replay` filters (--order, --partition with --from/--to, --type,
   and combinations) give exactly the expected subsets; an unknown --type
   is exit 2.
5. `waybill replay --publish=TOPIC`: an order's entries republished to a
   fresh topic (count, partitions, seqs, versions, keys, values decoding
   and equal to <prefix>ledger's); filters apply; too few partitions or a
   missing topic exit 1.
6. Usage errors: replay/verify/stats with a stray argument, or on a
   directory that is not a ledger, exit 2 saying so.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402

EXAMPLES = os.path.join(T.ROOT, "schemas", "examples", "all-types.jsonl")
PARTS = 8          # the example orders land in 1, 3 and 5
RECORD_MAX = 1000  # ledger.record.max.bytes for this test
T0 = 1767225600000


def murmur2(d):
    """Kafka's Java partitioner hash (Utils.murmur2)."""
    m, h = 0x5bd1e995, (0x9747b28c ^ len(d)) & 0xffffffff
    n4 = len(d) // 4
    for i in range(n4):
        k = int.from_bytes(d[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = d[4 * n4:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h = ((h ^ rest[0]) * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def partition_of(order_id):
    return (murmur2(order_id.encode()) & 0x7fffffff) % PARTS


PAYLOADS = [
    ("PaymentStatusChanged", lambda i: {
        "status": "paid", "amount_paid": {"amount": 100 + i, "currency": "USD"}}),
    ("ShipmentStatusChanged", lambda i: {
        "tracking_number": "TRK%d" % i, "status": "in_transit", "carrier": "UPS",
        "carrier_time": T0 + i}),
    ("OrderUpdated", lambda i: {"note": "note %d" % i}),
    ("OrderCancelled", lambda i: {"reason": "customer", "cancelled_at": T0 + i}),
]


def merchant_of(order_id):
    """Each order belongs to one merchant (the ledger refuses others)."""
    return "m%d" % (sum(order_id.encode()) % 3)


def event(eid, order_id, i, kind):
    """A valid event; kind indexes PAYLOADS."""
    name, payload = PAYLOADS[kind]
    return {"event_id": eid, "merchant": merchant_of(order_id), "order_id": order_id,
            "channel": order_id.split(":", 1)[0], "type": name,
            "source_time": T0 + 1000 * i, "ingest_time": T0 + 1000 * i + 7,
            "source": "ledger-kafka-test", "payload": payload(i)}


def read_long(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        if not c & 0x80:
            return (v >> 1) ^ -(v & 1), i
        shift += 7


def envelope(frame):
    """Byte ranges of a framed OrderEvent's envelope fields."""
    i, out = 10, {}
    for name in ("event_id", "merchant", "order_id", "channel", "type"):
        n, j = read_long(frame, i)
        out[name] = (j, j + n)
        i = j + n
    for name in ("source_time", "ingest_time"):
        _, j = read_long(frame, i)
        out[name] = (i, j)
        i = j
    n, j = read_long(frame, i)
    out["source"] = (j, j + n)
    i = j + n
    for name in ("correlation_id", "causation_id"):
        branch, i = read_long(frame, i)
        if branch == 1:
            n, j = read_long(frame, i)
            i = j + n
    _, j = read_long(frame, i)
    out["branch"] = (i, j)
    return out


def encode(events):
    """Framed Avro of each event, by the project's own codec."""
    r = subprocess.run([os.path.join(T.BIN, "tests", "wb-avro-tool"), "encode", "OrderEvent"],
                       input="".join(json.dumps(e) + "\n" for e in events).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return [bytes.fromhex(line) for line in r.stdout.decode().split()]


class Events:
    """The valid events of the test, in the order they are sent."""

    def __init__(self):
        with open(EXAMPLES) as f:
            self.examples = [json.loads(line) for line in f if line.strip()]
        used = {partition_of(e["order_id"]) for e in self.examples}
        # a partition nobody's orders map to: it only ever gets bad records
        self.bad_only = max(p for p in range(PARTS) if p not in used)
        self.orders = []
        per = {}
        n = 0
        while any(per.get(p, 0) < 2 for p in range(PARTS) if p != self.bad_only):
            oid = ("pos:lk-%d" if n % 2 else "amazon:lk-%d") % n
            n += 1
            p = partition_of(oid)
            if p != self.bad_only and per.get(p, 0) < 2:
                per[p] = per.get(p, 0) + 1
                self.orders.append(oid)
        # two orders whose ids are prefixes of each other, for --order
        n = 0
        while True:
            a = "pos:lkp-%d" % n
            if partition_of(a) != self.bad_only and partition_of(a + "0") != self.bad_only:
                self.orders += [a, a + "0"]
                break
            n += 1
        self.seq = 0
        self.round = 0

    def new_order(self):
        n = 0
        while partition_of("pos:lk-new-%d" % n) == self.bad_only:
            n += 1
        return "pos:lk-new-%d" % n

    def batch(self, per_order):
        out = []
        for _ in range(per_order):
            for j, oid in enumerate(self.orders):
                # each order's type changes from round to round
                out.append(event("lk-%d" % self.seq, oid, self.seq, (self.round + j) % 4))
                self.seq += 1
            self.round += 1
        return out


def write_jsonl(path, events):
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


class Case:
    def __init__(self, t, tmp, bad_only, ledger_flags):
        self.t = t
        self.bad_only = bad_only
        self.tmp = tmp
        self.flags = T.common_flags(t)
        self.events_topic = t.topic("events")
        self.data = os.path.join(tmp, "ledger")
        self.argv = [T.exe("waybill-ledger"), "--data-dir=" + self.data,
                     "--ledger.group.id=" + t.prefix + "ledger",
                     "--ledger.instance.id=" + t.prefix + "ledger-0",
                     "--ledger.record.max.bytes=%d" % RECORD_MAX] + ledger_flags + self.flags
        self.ledger = T.Proc(self.argv, os.path.join(tmp, "ledger.log"))
        self.bad = {}   # key -> (kind, size or -1, error keyword, partition)
        self.nfile = 0

    def ingest(self, events, what):
        self.nfile += 1
        path = os.path.join(self.tmp, "valid%d.jsonl" % self.nfile)
        write_jsonl(path, events)
        r = T.run([T.exe("waybill-ingest"), "events", path] + self.flags)
        T.ok(r.returncode == 0, "%s: %d events acknowledged by Kafka" % (what, len(events)))
        if r.returncode:
            T.diag(r.stderr.decode()[-800:])

    def produce(self, key, partition, value, kind, keyword):
        """One raw record: value is bytes, or None for a NULL value. A
        bad one (kind set) is remembered with what its DLQ record must
        show."""
        argv = ["kcat", "-P", "-b", T.BOOTSTRAP, "-t", self.events_topic, "-p", str(partition)]
        if value is None or value == b"":
            # a message of its own through the key delimiter; -Z sends it
            # as NULL instead of zero-length
            argv += ["-K", "\t"] + (["-Z"] if value is None else [])
            r = subprocess.run(argv, input=key.encode() + b"\t\n", stderr=subprocess.PIPE)
        else:
            path = os.path.join(self.tmp, "raw-%s.bin" % key.replace(":", "_"))
            with open(path, "wb") as f:
                f.write(value)
            r = subprocess.run(argv + ["-k", key, path], stderr=subprocess.PIPE)
        if r.returncode:
            T.diag("kcat: " + r.stderr.decode())
        if kind is not None:
            self.bad[key] = (kind, -1 if value is None else len(value), keyword, partition)
        return r.returncode == 0

    def positions(self):
        """(partition, offset, key) of every record in <prefix>events."""
        r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", self.events_topic, "-e", "-q",
                   "-f", "%p %o %k\n"])
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            p, o, k = line.split(" ", 2)
            out.append((int(p), int(o), k))
        return out

    def end_offsets(self):
        ends = {}
        for p, o, _ in self.positions():
            ends[p] = max(ends.get(p, 0), o + 1)
        return ends

    def dlq(self):
        """The DLQ as [{key, value size, headers...}] (kcat -J and -f)."""
        topic = self.t.topic("dlq")
        r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", topic, "-e", "-q", "-J"])
        recs = {}
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            j = json.loads(line)
            h = j.get("headers") or []
            j["hdr"] = {h[i]: h[i + 1] for i in range(0, len(h), 2)}
            recs[(j["partition"], j["offset"])] = j
        r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", topic, "-e", "-q", "-Z",
                   "-f", "%p %o %S\n"])
        for line in r.stdout.decode().splitlines():
            p, o, s = map(int, line.split())
            if (p, o) in recs:
                recs[(p, o)]["size"] = s
        return list(recs.values())

    def waybill(self, *args):
        r = T.run([T.exe("waybill")] + list(args) + ["--data-dir=" + self.data])
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def stats(self):
        # stats reports the offsets of <topic.prefix>events: without the
        # prefix it would look for orders.events and say -1 (never seen)
        rc, out, _ = self.waybill("stats", "--topic.prefix=" + self.t.prefix)
        return json.loads(out) if rc == 0 else None

    def replay(self, *filters):
        rc, out, err = self.waybill("replay", *filters)
        if rc:
            T.diag("replay %s: %s" % (" ".join(filters), err))
        return [json.loads(line) for line in out.splitlines()]

    def wait_settled(self, entries, dlq, timeout=90):
        """Until the ledger holds `entries`, its offsets are the topic's
        end offsets (but in the partition of bad records only, which the
        assertions look at separately) and the DLQ has `dlq` records."""
        ends = self.end_offsets()
        state = {}

        def settled():
            s = self.stats()
            if s is None:
                return False
            state["stats"] = s
            offs = {p["partition"]: p["next_offset"].get(self.t.topic("events")) for p in s["partitions"]}
            done = s["entries"] == entries and all(
                offs.get(p) == e for p, e in ends.items() if p != self.bad_only)
            if not done:
                return False
            state["dlq"] = len(self.dlq())
            return state["dlq"] >= dlq
        ok = T.wait_for(settled, timeout, 0.5)
        if not ok:
            T.diag("not settled: stats %s, dlq %s, ends %s"
                   % (json.dumps(state.get("stats")), state.get("dlq"), ends))
            T.diag(self.ledger.log_tail(15))
        return ok


def bad_records(template_events):
    """The bad records and their (hand-made) bytes."""
    good = encode(template_events)
    out = []
    # 1. not Avro at all
    out.append(("json", b'{"event_id":"x","order_id":"shopify:1"}', "C3 01"))
    # 2. a C3 01 header with another schema's fingerprint
    f = bytearray(good[0])
    f[2] ^= 0xff
    out.append(("fingerprint", bytes(f), "fingerprint"))
    # 3. cut off in the payload
    out.append(("truncated", good[1][:len(good[1]) - 5], "truncated"))
    # 4. channel rewritten with same-length text: order_id 'shopify:...'
    #    no longer belongs to the record's channel
    f = bytearray(good[2])
    a, b = envelope(f)["channel"]
    assert f[a:b] == b"shopify"
    f[a:b] = b"walmart"
    out.append(("channel", bytes(f), "order_id"))
    # 5. type names another payload (OrderUpdated -> ReturnClosed)
    f = bytearray(good[3])
    a, b = envelope(f)["type"]
    assert f[a:b] == b"OrderUpdated"
    f[a:b] = b"ReturnClosed"
    out.append(("type", bytes(f), "$.type"))
    # 6. payload union branch 63 (zig-zag 0x7e): no such type
    f = bytearray(good[3])
    a, b = envelope(f)["branch"]
    f[a:b] = b"\x7e"
    out.append(("branch", bytes(f), "union branch"))
    # 7. a valid event of 2000 bytes, over ledger.record.max.bytes=1000
    big = dict(template_events[3])
    big["payload"] = {"note": "x" * 1900}   # length varint of the final width
    pad = 2000 - len(encode([big])[0])
    big["payload"] = {"note": "x" * (1900 + pad)}
    frame = encode([big])[0]
    assert len(frame) == 2000, len(frame)
    out.append(("oversized", frame, "2000 bytes over ledger.record.max.bytes (1000)"))
    # 8. NULL value (tombstone) and 9. zero-length value
    out.append(("null", None, "empty"))
    out.append(("zero", b"", "empty"))
    return out


def noncanonical(frame):
    """The same event with source_time as a longer (legal, non-minimal)
    varint: the last byte gets the continuation bit and a 0x00 follows."""
    a, b = envelope(frame)["source_time"]
    return frame[:b - 1] + bytes([frame[b - 1] | 0x80, 0]) + frame[b:]


def raw_records(topic):
    """[(key, value)] of a topic, bytes as stored (kcat: key, size, value)."""
    r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", topic, "-e", "-q", "-f", "%k %S %s\n"])
    out, b, i = [], r.stdout, 0
    while i < len(b):
        sp = b.index(b" ", i)
        sp2 = b.index(b" ", sp + 1)
        n = int(b[sp + 1:sp2])
        out.append((b[i:sp], b[sp2 + 1:sp2 + 1 + n]))
        i = sp2 + 1 + n + 1
    return out


def check_chains(entries, what):
    """entries in replay order: (partition, seq). Not sorted here, so a
    version handed out out of seq order shows."""
    seqs, versions, in_order = {}, {}, True
    last = {}
    for e in entries:
        seqs.setdefault(e["partition"], []).append(e["seq"])
        versions.setdefault(e["order_id"], []).append(e["version"])
        prev = last.get((e["order_id"], e["partition"]))
        if prev is not None and e["version"] <= prev:
            in_order = False
        last[(e["order_id"], e["partition"])] = e["version"]
    gapless = all(s == list(range(1, len(s) + 1)) for s in seqs.values())
    T.ok(gapless, "%s: seqs gapless in %d partitions" % (what, len(seqs)))
    vok = all(sorted(v) == list(range(1, len(v) + 1)) for v in versions.values())
    T.ok(vok and in_order, "%s: versions gapless for %d orders, increasing with seq in each "
         "partition" % (what, len(versions)))
    return seqs


def check_dlq(case, what):
    """Every bad record exactly once, as received, with source and error."""
    pos = {k: (p, o) for p, o, k in case.positions()}
    recs = case.dlq()
    by_key = {}
    for r in recs:
        by_key.setdefault(r.get("key"), []).append(r)
    T.ok(len(recs) == len(case.bad),
         "%s: %d records in the DLQ, one per bad record (%d)" % (what, len(recs), len(case.bad)))
    stray = [k for k in by_key if k not in case.bad]
    T.ok(not stray, "%s: nothing else in the DLQ (%s)" % (what, stray[:5]))
    bad_lines = []
    for key, (kind, size, keyword, part) in sorted(case.bad.items()):
        got = by_key.get(key, [])
        p, o = pos.get(key, (None, None))
        want_src = "waybill-ledger %s/%s@%s" % (case.events_topic, p, o)
        if len(got) != 1:
            bad_lines.append("%s: %d DLQ records" % (key, len(got)))
            continue
        r = got[0]
        err = r["hdr"].get("waybill.error", "")
        src = r["hdr"].get("waybill.source", "")
        if p != part:
            bad_lines.append("%s: produced to %s, expected %d" % (key, p, part))
        if src != want_src:
            bad_lines.append("%s: waybill.source %r, want %r" % (key, src, want_src))
        if keyword not in err:
            bad_lines.append("%s: waybill.error %r lacks %r" % (key, err, keyword))
        if r.get("size") != size:
            bad_lines.append("%s: value of %s bytes, sent %d" % (key, r.get("size"), size))
    if what == "first run":
        for r in sorted(recs, key=lambda r: r["offset"]):
            T.diag("dlq %s: %s | %s" % (r.get("key"), r["hdr"].get("waybill.source"),
                                         r["hdr"].get("waybill.error")))
    T.ok(not bad_lines, "%s: each bad record once, key and value as received, "
         "specific waybill.error, waybill.source = topic/partition@offset" % what)
    for line in bad_lines:
        T.diag(line)
    return recs


def main():
    T.require_broker()
    if not shutil.which("kcat"):
        print("1..0 # SKIP kcat not installed (ops/install-deps)")
        sys.exit(T.SKIP)
    started = time.time()
    ev = Events()
    with T.Topics("lkafka", partitions=PARTS) as topics, T.TempDir() as tmp:
        case = Case(topics, tmp, ev.bad_only, ["--ledger.stats.interval.ms=2000"])
        T.diag("prefix %s; %d orders; partition %d gets only bad records"
               % (topics.prefix, len(ev.orders), ev.bad_only))
        case.ledger.start()

        # ---- 1. bad input among valid events -------------------------------
        first = ev.examples[:9] + ev.batch(2)
        second = ev.examples[9:] + ev.batch(2)
        third = ev.batch(1)
        templates = [event("lk-bad-%d" % i, "shopify:lk-bad-%d" % i, i, kind=2)
                     for i in range(4)]
        bad = bad_records(templates)
        # partitions with valid events before and after the bad ones
        mixed = sorted({partition_of(o) for o in ev.orders})
        case.ingest(first, "first valid batch")
        ok = True
        for i, (kind, value, keyword) in enumerate(bad[:5]):
            ok &= case.produce("bad:%s" % kind, mixed[i % len(mixed)], value, kind, keyword)
        case.ingest(second, "second valid batch")
        for i, (kind, value, keyword) in enumerate(bad[5:]):
            ok &= case.produce("bad:%s" % kind, mixed[(i + 5) % len(mixed)], value, kind, keyword)
        # and some in a partition that never sees a valid event
        for kind, value, keyword in (bad[1], bad[7]):
            ok &= case.produce("bad-only:%s" % kind, ev.bad_only, value, kind, keyword)
        # one valid event in a legal but non-minimal encoding
        nc_event = event("lk-noncanonical", ev.orders[0], 9999, kind=0)
        nc_frame = noncanonical(encode([nc_event])[0])
        ok &= case.produce(nc_event["order_id"], partition_of(nc_event["order_id"]),
                           nc_frame, None, None)
        case.ingest(third, "third valid batch")
        T.ok(ok, "%d bad records and one non-minimal event produced with kcat" % len(case.bad))

        valid = first + second + third + [nc_event]
        want_ids = sorted(e["event_id"] for e in valid)
        settled = case.wait_settled(len(valid), len(case.bad))
        T.ok(settled, "ledger caught up: %d entries, offsets at the end of %s"
             % (len(valid), case.events_topic))

        entries = case.replay()
        ids = sorted(e["event_id"] for e in entries)
        T.ok(ids == want_ids, "every valid event in the ledger exactly once (%d entries, want %d)"
             % (len(ids), len(want_ids)))
        if ids != want_ids:
            T.diag("missing %s; extra %s" % (sorted(set(want_ids) - set(ids))[:10],
                                             [i for i in ids if ids.count(i) > 1 or i not in want_ids][:10]))
        check_chains(entries, "first run")
        nc = [e for e in entries if e["event_id"] == "lk-noncanonical"]
        T.ok(len(nc) == 1 and nc[0]["source_time"] == nc_event["source_time"],
             "the non-minimal encoding was accepted with its values")

        ends = case.end_offsets()
        s = case.stats()
        offs = {p["partition"]: p["next_offset"].get(case.t.topic("events")) for p in s["partitions"]}
        wrong = {p: (offs.get(p), e) for p, e in ends.items()
                 if offs.get(p) != e and p != ev.bad_only}
        T.ok(not wrong, "waybill stats: next_offset == end offset of every partition with "
             "entries (mismatches as partition: (stats, end): %s)" % wrong)
        # a partition that only ever had rejected records is listed too
        got = offs.get(ev.bad_only)
        T.ok(got == ends[ev.bad_only],
             "waybill stats: next_offset of partition %d (bad records only) is %s, want %d"
             % (ev.bad_only, got, ends[ev.bad_only]))
        check_dlq(case, "first run")

        # ---- 2. redelivery ---------------------------------------------------
        before = {(e["partition"], e["seq"]): e["hash"] for e in entries}
        nc_canonical = dict(nc_event)
        case.ingest(first + second + third + [nc_canonical], "redelivery of every valid event")
        T.ok(case.wait_settled(len(valid), len(case.bad)),
             "ledger consumed the redelivery (offsets at the end again)")
        entries = case.replay()
        T.ok(len(entries) == len(valid), "redelivery: %d entries, unchanged" % len(entries))
        T.ok({(e["partition"], e["seq"]): e["hash"] for e in entries} == before,
             "redelivery: the log is byte for byte what it was (same seqs and hashes)")
        check_chains(entries, "redelivery")

        # ---- 3. restart --------------------------------------------------------
        rc = case.ledger.stop()
        T.ok(rc == 0, "ledger stopped on SIGTERM (status %s)" % rc)
        heads = {p["partition"]: p["head_seq"] for p in case.stats()["partitions"]}
        case.ledger.start()
        fourth = ev.batch(2)
        fourth.append(event("lk-new-order", ev.new_order(), 7777, kind=0))
        case.ingest(fourth, "events after the restart")
        ok = case.produce("bad:after-restart", mixed[0], b"not avro either", "json", "C3 01")
        T.ok(ok, "one more bad record after the restart")
        # valid events the ledger must refuse or flag
        acme_order = "shopify:820982911946154508"
        acme = [e for e in ev.examples if e["order_id"] == acme_order]
        foreign = dict(acme[1], event_id="other-shop:orders/updated:1", merchant="other-shop",
                       payload=dict(acme[1]["payload"], email="intruder@other-shop.example"))
        reused = dict(first[-1], order_id="pos:lk-reused", merchant=merchant_of("pos:lk-reused"))
        src = next(e for e in first if e["type"] == "OrderUpdated" and e["event_id"].startswith("lk-"))
        differs = dict(src, payload={"note": src["payload"]["note"] + " (told again)"})
        frames = encode([foreign, reused, differs])
        ok = case.produce(acme_order, partition_of(acme_order), frames[0], "foreign-merchant",
                          "order %s belongs to another merchant" % acme_order)
        ok &= case.produce(reused["order_id"], partition_of(reused["order_id"]), frames[1],
                           "event-id-reuse", "event_id %s already recorded for another "
                           "order/merchant/type" % reused["event_id"])
        ok &= case.produce(differs["order_id"], partition_of(differs["order_id"]), frames[2],
                           None, None)
        T.ok(ok, "produced: another merchant's event for %s, a reused event_id for another "
             "order, a recorded event with another payload" % acme_order)
        valid += fourth
        T.ok(case.wait_settled(len(valid), len(case.bad)), "restarted ledger caught up")
        rc = case.ledger.stop()
        T.ok(rc == 0, "ledger stopped on SIGTERM again (status %s)" % rc)
        if rc:
            T.diag(case.ledger.log_tail())
        with open(case.ledger.log_path, errors="replace") as f:
            log = f.read().splitlines()
        warn = [line for line in log if "event=duplicate_differs event_id=%s " % differs["event_id"] in line]
        T.ok(len(warn) == 1 and "level=warn" in warn[0],
             "the recorded event with another payload: one warn line event=duplicate_differs")
        last = [line for line in log if "event=stats" in line][-1]
        want = ("duplicates_differing=1", "rejected_merchant=1", "rejected_event_id=1")
        T.ok(all(w in last.split() for w in want), "stats count them: %s" % " ".join(
            w for w in last.split() if w.startswith(("duplicates", "rejected"))))
        mine = case.replay("--order=" + acme_order)
        T.ok(len(mine) == len(acme) and all(e["merchant"] == acme[0]["merchant"] for e in mine)
             and all(e["event_id"] != foreign["event_id"] for e in mine),
             "replay --order=%s: its %d entries, none of another merchant" % (acme_order, len(acme)))
        T.ok(not case.replay("--order=pos:lk-reused"),
             "replay --order=pos:lk-reused: nothing (the reused event_id was refused)")

        entries = case.replay()
        ids = sorted(e["event_id"] for e in entries)
        T.ok(ids == sorted(e["event_id"] for e in valid),
             "after the restart: every valid event exactly once (%d)" % len(ids))
        seqs = check_chains(entries, "after the restart")
        cont = all(min(s for s in seqs[p] if s > h) == h + 1
                   for p, h in heads.items() if any(s > h for s in seqs.get(p, [])))
        T.ok(cont, "seqs continue from the heads before the restart (%s)" % heads)
        rc, out, _ = case.waybill("verify")
        T.ok(rc == 0, "waybill verify: " + out.strip())
        r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, topics.topic("ledger"), "ledger"])
        pub = {}
        for line in r.stdout.decode().splitlines():
            p, seq = line.split()[:2]
            pub.setdefault(int(p), set()).add(int(seq))
        missing = sum(len(set(s) - pub.get(p, set())) for p, s in seqs.items())
        T.ok(r.returncode == 0 and missing == 0,
             "%s holds every seq (%d missing)" % (topics.topic("ledger"), missing))
        check_dlq(case, "after the restart")

        # ---- 4. replay filters ---------------------------------------------------
        def key(e):
            return (e["partition"], e["seq"])
        everything = sorted(entries, key=key)
        T.ok(entries == everything, "replay: in (partition, seq) order")

        def same(filters, want, what, within=None):
            """replay with filters gives exactly want; want is not empty
            (unless the test says so) and, with within, is fewer entries
            than that, so the filter really narrows."""
            got = case.replay(*filters)
            T.ok(got == want and (want or "empty" in what) and (within is None or len(want) < within),
                 "replay %s: %s (%d entries, want %d%s)"
                 % (" ".join(filters), what, len(got), len(want),
                    "" if within is None else " of %d" % within))

        short, long_ = ev.orders[-2], ev.orders[-1]   # "pos:lkp-N" and "pos:lkp-N0"
        for oid in (short, long_, "shopify:820982911946154508"):
            want = sorted((e for e in everything if e["order_id"] == oid), key=lambda e: e["version"])
            same(["--order=" + oid], want, "exactly that order's entries, by version")
        same(["--order=pos:no-such-order"], [], "empty for an unknown order")
        p = max(seqs, key=lambda q: len(seqs[q]))
        n = len(seqs[p])
        lo, hi = n // 4, 3 * n // 4
        same(["--partition=%d" % p, "--from=%d" % lo, "--to=%d" % hi],
             [e for e in everything if e["partition"] == p and lo <= e["seq"] <= hi],
             "seqs %d..%d of partition %d" % (lo, hi, p), within=n)
        same(["--partition=%d" % p, "--from=%d" % n], [e for e in everything if key(e) == (p, n)],
             "the last entry alone")
        same(["--partition=%d" % p, "--from=%d" % (n + 1)], [], "empty past the head")
        same(["--partition=%d" % p], [e for e in everything if e["partition"] == p],
             "the whole partition")
        same(["--partition=%d" % ev.bad_only], [], "empty for the partition of bad records only")
        same(["--from=2", "--to=3"], [e for e in everything if 2 <= e["seq"] <= 3],
             "seqs 2..3 of every partition")
        for t in ("OrderCancelled", "ReturnReceived"):
            same(["--type=" + t], [e for e in everything if e["type"] == t], "only %s" % t,
                 within=len(everything))
        rc, out, err = case.waybill("replay", "--type=NoSuchType")
        T.ok(rc == 2 and not out and "unknown event type 'NoSuchType'" in err
             and "OrderPlaced" in err, "replay --type=NoSuchType: exit 2 naming the known types")
        of_short = sorted((e for e in everything if e["order_id"] == short), key=lambda e: e["version"])
        same(["--order=" + short, "--type=OrderUpdated"],
             [e for e in of_short if e["type"] == "OrderUpdated"], "--order and --type together",
             within=len(of_short))
        types = [e["type"] for e in everything if e["partition"] == p and e["seq"] >= lo]
        t = max(set(types), key=types.count)
        same(["--partition=%d" % p, "--type=" + t, "--from=%d" % lo],
             [e for e in everything if e["partition"] == p and e["seq"] >= lo
              and e["type"] == t], "--partition, --from and --type together", within=len(types))

        # ---- 5. replay --publish ----------------------------------------------------
        with T.Topics("lkrepub", partitions=PARTS) as fresh:
            dest = fresh.topic("ledger")
            want = case.replay("--order=" + acme_order)
            rc, out, err = case.waybill("replay", "--order=" + acme_order, "--publish=" + dest,
                                        "--kafka.bootstrap.servers=" + T.BOOTSTRAP)
            T.ok(rc == 0 and out.strip() == "published %d entries to %s" % (len(want), dest),
                 "replay --order --publish: exit 0, prints the count (%s%s)"
                 % (out.strip(), err.strip()[-300:]))
            r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, dest, "ledger"])
            got = [line.split() for line in r.stdout.decode().splitlines()]
            T.ok(r.returncode == 0 and len(got) == len(want) and all(g[1] != "BAD" for g in got),
                 "%s: %d records, every value decodes as a LedgerEntry" % (dest, len(got)))
            T.ok(sorted((int(g[0]), int(g[1]), int(g[2]), g[3], g[4]) for g in got)
                 == sorted((e["partition"], e["seq"], e["version"], e["order_id"], e["event_id"])
                           for e in want),
                 "republished: the order's partition, seqs, versions and event ids")
            r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", dest, "-e", "-q", "-f", "%k\n"])
            T.ok(set(r.stdout.decode().split()) == {acme_order}, "keyed by the order id")
            # the bytes are the ledger's own: same records on <prefix>ledger
            mine = {r for r in raw_records(topics.topic("ledger")) if r[0] == acme_order.encode()}
            theirs = raw_records(dest)
            T.ok(theirs and set(theirs) <= mine and len(theirs) == len(want),
                 "values byte for byte those on %s" % topics.topic("ledger"))
            # filters apply: one type of the whole ledger
            t = "OrderCancelled"
            rc, out, err = case.waybill("replay", "--type=" + t, "--from=2", "--publish=" + dest,
                                        "--kafka.bootstrap.servers=" + T.BOOTSTRAP)
            n = len([e for e in everything if e["type"] == t and e["seq"] >= 2])
            T.ok(rc == 0 and out.strip() == "published %d entries to %s" % (n, dest),
                 "replay --type --from --publish: %s" % out.strip())
        with T.Topics("lkrepub1", partitions=1) as small:
            rc, out, err = case.waybill("replay", "--publish=" + small.topic("ledger"),
                                        "--kafka.bootstrap.servers=" + T.BOOTSTRAP)
            T.ok(rc == 1 and "has 1 partitions" in err, "a topic with too few partitions: exit 1 (%s)"
                 % err.strip())
        rc, out, err = case.waybill("replay", "--publish=" + topics.prefix + "no-such-topic",
                                    "--kafka.bootstrap.servers=" + T.BOOTSTRAP)
        T.ok(rc == 1 and "no-such-topic" in err, "a missing topic: exit 1 (%s)" % err.strip()[-200:])

        # ---- 6. usage errors ------------------------------------------------------
        for cmd in ("replay", "verify", "stats"):
            rc, out, err = case.waybill(cmd, "shopify:999")
            T.ok(rc == 2 and not out and "%s takes no arguments, got 'shopify:999'" % cmd in err,
                 "%s with a stray argument: exit 2, nothing printed (%s)" % (cmd, err.strip()))
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        for cmd in ("replay", "verify", "stats"):
            r = T.run([T.exe("waybill"), cmd, "--data-dir=" + empty])
            err = r.stderr.decode()
            T.ok(r.returncode == 2 and "%s is not a Waybill ledger" % empty in err
                 and "CURRENT" not in err, "%s on an empty directory: %s" % (cmd, err.strip()))
        T.diag("%.1f s" % (time.time() - started))
    T.done()


if __name__ == "__main__":
    main()
