#!/usr/bin/env python3
"""Tamper test: `waybill verify` must notice a stored entry rewritten behind
the ledger's back, and name where.

waybill-ledger records the example events plus a few hundred generated ones
(all partitions) and is stopped; `waybill verify` passes. Then, each on its
own copy of the data directory, tests/tools/wb_tamper.c (RocksDB and
libcrypto only: an outside attacker) flips one bit in the event of one
stored entry in the middle of a chain:

  1. the entry alone: verify names that seq (its hash no longer matches);
  2. the entry with its own hash recomputed, so it is self-consistent:
     verify names the NEXT seq (its prev_hash no longer matches);
  3. as 2 on the last entry of the chain: there is no next entry, and
     verify names the entry itself (the stored chain head disagrees);
  4. as 2 and every later link and the stored head recomputed too: the
     store is consistent again and verify cannot tell (a hash chain
     without an anchor outside the store cannot); the head hash differs
     from the one reported before the attack and from the last entry in
     <prefix>ledger: an outside record is what catches this one.
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import wbtest as T  # noqa: E402

EXAMPLES = os.path.join(T.ROOT, "schemas", "examples", "all-types.jsonl")
EVENTS = 300
ORDERS = 40


# Every type used here ends in a string or an int, so a flip of the lowest
# bit of an event's last byte leaves it decodable (a plausible forgery).
PAYLOADS = [
    ("PaymentStatusChanged", lambda i: {
        "status": "paid", "amount_paid": {"amount": 500 + i, "currency": "EUR"}}),
    ("ActionRejected", lambda i: {
        "action_id": "act-%d" % i, "kind": "cancel",
        "parameters": {"reason": "customer", "address": None, "amount": None,
                       "lines": [], "note": None},
        "requester": "agent:bot", "idempotency_key": "idem-%d" % i,
        "reason": "already_shipped"}),
    ("OrderCancelled", lambda i: {
        "reason": "customer", "cancelled_at": 1767225600000 + 1000 * i,
        "note": "cancelled by test %d" % i}),
    ("ActionFailed", lambda i: {
        "action_id": "act-%d" % i, "kind": "refund", "idempotency_key": "idem-%d" % i,
        "reason": "channel_error", "attempts": 3}),
]


def generated(i):
    o = i % ORDERS
    kind, payload = PAYLOADS[i % len(PAYLOADS)]
    return json.dumps({
        "event_id": "tamper-%d" % i, "merchant": "m%d" % (o % 3),
        "order_id": "pos:tamper%02d-%04d" % (o % 7, o), "channel": "pos", "type": kind,
        "source_time": 1767225600000 + 1000 * i, "ingest_time": 1767225600000 + 1000 * i,
        "source": "tamper-test", "payload": payload(i)}, separators=(",", ":"))


def waybill(*args):
    r = T.run([T.exe("waybill")] + list(args))
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def stats(data):
    rc, out, err = waybill("stats", "--data-dir=" + data)
    return json.loads(out) if rc == 0 else None


def last_published(topic, partition):
    """(seq, hex hash) of the last LedgerEntry in one partition of topic:
    C3 01, 8 bytes of fingerprint, then zz(partition) zz(seq) zz(version)
    zz(recorded_at) bytes(prev_hash) bytes(hash) event."""
    r = T.run(["kcat", "-C", "-b", T.BOOTSTRAP, "-t", topic, "-p", str(partition),
               "-o", "-1", "-c", "1", "-e", "-q", "-f", "%s"])
    b = r.stdout

    def zz(i):
        v = shift = 0
        while True:
            v |= (b[i] & 0x7f) << shift
            i += 1
            if not b[i - 1] & 0x80:
                return (v >> 1) ^ -(v & 1), i
            shift += 7
    try:
        i = 10
        _, i = zz(i)
        seq, i = zz(i)
        _, i = zz(i)
        _, i = zz(i)
        n, i = zz(i)
        i += n
        n, i = zz(i)
        return seq, b[i:i + n].hex()
    except IndexError:
        T.diag("could not read %s [%d]: %r" % (topic, partition, r.stderr))
        return None, None


def main():
    T.require_broker()
    if not shutil.which("kcat"):
        print("1..0 # SKIP kcat not installed (ops/install-deps)")
        sys.exit(T.SKIP)
    tamper = os.path.join(T.BIN, "tests", "wb-tamper")
    t0 = time.time()
    with T.Topics("tamper") as topics, T.TempDir() as tmp:
        gen = os.path.join(tmp, "generated.jsonl")
        with open(gen, "w") as f:
            f.write("\n".join(generated(i) for i in range(EVENTS)) + "\n")
        with open(EXAMPLES) as f:
            total = EVENTS + sum(1 for line in f if line.strip())

        data = os.path.join(tmp, "ledger")
        flags = T.common_flags(topics)
        ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + data,
                         "--ledger.group.id=" + topics.prefix + "ledger",
                         "--ledger.instance.id=" + topics.prefix + "ledger-0"] + flags,
                        os.path.join(tmp, "ledger.log")).start()
        for path in (EXAMPLES, gen):
            r = T.run([T.exe("waybill-ingest"), "events", path] + flags)
            T.ok(r.returncode == 0, "ingested %s" % os.path.basename(path))

        def caught_up():
            s = stats(data)
            return s is not None and s["entries"] >= total
        T.ok(T.wait_for(caught_up, 120, 0.5), "ledger recorded %d entries" % total)
        rc = ledger.stop()
        T.ok(rc == 0, "ledger stopped cleanly (status %s)" % rc)
        if rc != 0:
            T.diag(ledger.log_tail())

        rc, out, _ = waybill("verify", "--data-dir=" + data)
        T.ok(rc == 0 and out.startswith("ok:"), "untouched ledger verifies: " + out.strip())

        rc, out, _ = waybill("replay", "--data-dir=" + data)
        entries = {}
        for line in out.splitlines():
            e = json.loads(line)
            entries[(e["partition"], e["seq"])] = e
        per_part = {}
        for p, s in entries:
            per_part[p] = max(per_part.get(p, 0), s)
        T.ok(len(entries) == total and len(per_part) > 1,
             "%d entries in %d partitions" % (len(entries), len(per_part)))
        part = max(per_part, key=lambda p: per_part[p])
        head = per_part[part]
        mid = head // 2
        T.diag("target: partition %d seq %d of %d (%s)"
               % (part, mid, head, entries[(part, mid)]["type"]))
        before = stats(data)
        head_hash = [p["head_hash"] for p in before["partitions"] if p["partition"] == part][0]

        def attack(name, mode, seq):
            d = os.path.join(tmp, name)
            shutil.copytree(data, d)
            r = T.run([tamper] + ([mode] if mode else []) + [d, str(part), str(seq)])
            T.ok(r.returncode == 0, "%s: wb-tamper %s%d/%d" % (name, mode + " " if mode else "", part, seq))
            lines = (r.stdout.decode() + r.stderr.decode()).splitlines()
            T.diag("\n".join(lines if len(lines) <= 3 else lines[:1] + ["..."] + lines[-2:]))
            rc, out, err = waybill("verify", "--data-dir=" + d)
            T.diag("%s: verify exit %d: %s%s" % (name, rc, out.strip(), err.strip()))
            return d, rc, out.strip()

        def replayed(d, seq):
            rc, out, _ = waybill("replay", "--data-dir=" + d, "--partition=%d" % part,
                                 "--from=%d" % seq, "--to=%d" % seq)
            return json.loads(out) if rc == 0 and out.strip() else None

        # 1. one bit of one entry: that entry's hash is stale
        d, rc, out = attack("flip", None, mid)
        T.ok(rc == 1, "flip: verify exits 1 (got %d)" % rc)
        want = "BROKEN: partition %d seq %d: hash mismatch" % (part, mid)
        T.ok(out.startswith(want), "flip: verify says '%s...'" % want)
        forged = replayed(d, mid)
        T.ok(forged is not None and forged != entries[(part, mid)],
             "flip: the entry still decodes, with different content")
        if forged:
            T.diag("flip: payload was %s, is now %s"
                   % (json.dumps(entries[(part, mid)]["payload"]), json.dumps(forged["payload"])))

        # 2. the entry with its own hash recomputed: the next link breaks
        d, rc, out = attack("rehash", "--rehash", mid)
        T.ok(rc == 1, "rehash: verify exits 1 (got %d)" % rc)
        want = ("BROKEN: partition %d seq %d: prev_hash does not match the hash of seq %d"
                % (part, mid + 1, mid))
        T.ok(out.startswith(want), "rehash: verify names the next seq: '%s'" % want)
        forged = replayed(d, mid)
        T.ok(forged is not None and forged["hash"] != entries[(part, mid)]["hash"],
             "rehash: the forged entry decodes and carries a new hash")

        # 3. the same on the last entry: only the stored head disagrees
        d, rc, out = attack("rehash-last", "--rehash", head)
        T.ok(rc == 1, "rehash-last: verify exits 1 (got %d)" % rc)
        want = "BROKEN: partition %d seq %d: the stored chain head's hash differs" % (part, head)
        T.ok(out.startswith(want), "rehash-last: verify names the tampered seq: '%s'" % want)

        # 4. every later link and the head recomputed: consistent again
        d, rc, out = attack("rehash-chain", "--rehash-chain", mid)
        T.diag("rehash-chain: verify %s: a chain rewritten from seq %d to its head "
               "is consistent; only a hash kept outside the store detects it"
               % ("passes" if rc == 0 else "fails (exit %d)" % rc, mid))
        after = stats(d)
        new_head = [p["head_hash"] for p in after["partitions"] if p["partition"] == part][0]
        T.ok(new_head != head_hash,
             "rehash-chain: head hash %s... differs from %s... reported before"
             % (new_head[:16], head_hash[:16]))
        forged = replayed(d, head)
        T.ok(forged is not None and forged["hash"] == new_head
             and forged["hash"] != entries[(part, head)]["hash"],
             "rehash-chain: the last entry now carries the new head hash")
        seq, published = last_published(topics.topic("ledger"), part)
        T.ok(seq == head and published == head_hash,
             "rehash-chain: %s still has the true head (seq %s, hash %s...), which exposes it"
             % (topics.topic("ledger"), seq, (published or "?")[:16]))

        rc, out, _ = waybill("verify", "--data-dir=" + data)
        T.ok(rc == 0, "the original data dir still verifies")
        T.diag("%.1f s" % (time.time() - t0))
    T.done()


if __name__ == "__main__":
    main()
