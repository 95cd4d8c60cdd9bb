#!/usr/bin/env bash
# test_ingest_events.sh — `waybill-ingest events` against a real broker.
#
# Uses its own topic prefix (created with ops/kafka topics, deleted at the
# end) so it never touches orders.* or another test's topics. Checks that:
#   - every example event arrives, keyed by order id, each key as often as
#     it is in the file, on the partition Java's murmur2 partitioner picks;
#   - a file with one bad line exits 1 and names file:2 on stderr while its
#     good lines are still delivered;
#   - an event whose encoded value is exactly ledger.record.max.bytes is
#     produced, one a byte over is rejected as FILE:LINE with the reason
#     (the ledger would refuse it after we said it was kept);
#   - a missing topic fails fast (< 10 s) with a clear message.
# Output is TAP-like for reading; the verdict is the exit status (meson
# protocol exitcode): 0 pass, 1 fail, 77 skipped (no broker; says why).
set -uo pipefail

SRC=${WAYBILL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
INGEST=${WAYBILL_INGEST:-$SRC/build/ingestors/waybill-ingest}
BOOT=${WAYBILL_TEST_BOOTSTRAP:-127.0.0.1:9092}
PREFIX=itest-ingest-$$-$RANDOM.
TOPIC=${PREFIX}events
EXAMPLES=$SRC/schemas/examples/all-types.jsonl

skip() { echo "1..0 # SKIP $*"; exit 77; }
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

command -v kcat >/dev/null || skip "kcat not installed (ops/install-deps)"
command -v python3 >/dev/null || skip "python3 not installed"
[ -x "$INGEST" ] || { echo "Bail out! $INGEST is not built"; exit 99; }
if ! kcat -b "$BOOT" -L -m 5 >/dev/null 2>&1; then
  skip "no Kafka broker answers at $BOOT (start one with ops/kafka up," \
       "or set WAYBILL_TEST_BOOTSTRAP)"
fi

# ops/kafka manages topics on 127.0.0.1:<port>; take the port from BOOT.
# Not exported: waybill-ingest would read WAYBILL_KAFKA_PORT as the
# librdkafka property "port" and reject it.
topics() {
  WAYBILL_KAFKA_PORT=${BOOT##*:} WAYBILL_TOPIC_PREFIX=$PREFIX WAYBILL_PARTITIONS=6 \
    "$SRC/ops/kafka" topics "$@"
}
TMP=$(mktemp -d)
cleanup() {
  topics --delete >/dev/null 2>&1 || echo "# could not delete topics ${PREFIX}*"
  rm -rf "$TMP"
}
trap cleanup EXIT

if ! topics >"$TMP/topics.log" 2>&1; then
  cat "$TMP/topics.log"
  echo "Bail out! could not create topics ${PREFIX}*"
  exit 99
fi
echo "# topics ${PREFIX}* on $BOOT"

ingest() { # ingest NAME ARGS... -> $TMP/NAME.{out,err,rc}; ARGS may
  local name=$1; shift         # override the prefix (later flags win)
  "$INGEST" events --topic.prefix="$PREFIX" --kafka.bootstrap.servers="$BOOT" \
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
  echo $? >"$TMP/$name.rc"
}
rc_of() { cat "$TMP/$1.rc"; }
show_err() { sed 's/^/#   /' "$TMP/$1.err" | head -20; }

# Expected "partition key" lines for a JSON-lines file, with Kafka's Java
# murmur2 partitioner (Utils.murmur2, toPositive, mod partitions).
expected() {
  python3 - "$@" <<'EOF'
import json, sys
def murmur2(d):
    m, h = 0x5bd1e995, (0x9747b28c ^ len(d)) & 0xffffffff
    n4 = len(d) // 4
    for i in range(n4):
        k = int.from_bytes(d[4*i:4*i+4], 'little')
        k = (k * m) & 0xffffffff; k ^= k >> 24; k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = d[4*n4:]
    if len(rest) == 3: h ^= rest[2] << 16
    if len(rest) >= 2: h ^= rest[1] << 8
    if len(rest) >= 1: h = ((h ^ rest[0]) * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h
parts = int(sys.argv[1])
for path in sys.argv[2:]:
    for line in open(path, encoding='utf-8'):
        try:
            oid = json.loads(line)['order_id']
        except Exception:
            continue
        print((murmur2(oid.encode()) & 0x7fffffff) % parts, oid)
EOF
}
consumed() {
  kcat -b "$BOOT" -C -t "$TOPIC" -e -o beginning -q -f '%p %k\n' 2>"$TMP/kcat.err"
}

# 1. The examples: exit 0, exact summary, every key as often as in the file,
#    on murmur2's partition.
ingest all "$EXAMPLES"
check "examples: exit 0 (got $(rc_of all))" [ "$(rc_of all)" = 0 ] || show_err all
want=$(wc -l <"$EXAMPLES")
check "examples: summary read=$want accepted=$want rejected=0 acked=$want failed=0" \
  grep -qx "read=$want accepted=$want rejected=0 acked=$want failed=0" "$TMP/all.out"
expected 6 "$EXAMPLES" | sort >"$TMP/want1"
consumed | sort >"$TMP/got1"
if diff "$TMP/want1" "$TMP/got1" >"$TMP/diff1"; then
  ok "examples: $(wc -l <"$TMP/got1") records, each order id with its count and murmur2 partition"
else
  not_ok "examples: consumed records differ from the file (- want, + got)"
  sed 's/^/#   /' "$TMP/kcat.err" "$TMP/diff1" | head -20
fi

# 2. One bad line among good ones: exit 1, file:2: on stderr, good lines
#    still delivered (fresh order ids so they can be told apart).
python3 - "$EXAMPLES" >"$TMP/mixed.jsonl" <<'EOF'
import json, sys
ev = json.loads(open(sys.argv[1]).readlines()[-1])
for i in (1, 2):
    e = dict(ev, event_id=f"itest:good:{i}", order_id=f"{ev['channel']}:itest-good-{i}")
    e.pop('ingest_time', None)   # filled in by the ingestor
    print(json.dumps(e))
    if i == 1:
        print('{"event_id": "itest:bad", "merchant": ')
EOF
ingest mixed "$TMP/mixed.jsonl"
check "bad line: exit 1 (got $(rc_of mixed))" [ "$(rc_of mixed)" = 1 ]
check "bad line: stderr names $TMP/mixed.jsonl:2:" \
  grep -q "^$TMP/mixed.jsonl:2: invalid JSON" "$TMP/mixed.err" || show_err mixed
check "bad line: summary read=3 accepted=2 rejected=1 acked=2 failed=0" \
  grep -qx "read=3 accepted=2 rejected=1 acked=2 failed=0" "$TMP/mixed.out"
consumed | sort >"$TMP/got2"
check "bad line: both good lines delivered" \
  [ "$(grep -c ':itest-good-[12]$' "$TMP/got2")" = 2 ]

# 3. stdin works the same way.
grep -v '"itest:bad"' "$TMP/mixed.jsonl" | sed 's/itest-good-/itest-stdin-/; s/itest:good:/itest:stdin:/' \
  | ingest stdin -
check "stdin: exit 0 and 2 acked" \
  grep -qx "read=2 accepted=2 rejected=0 acked=2 failed=0" "$TMP/stdin.out" || show_err stdin
check "stdin: records arrived" [ "$(consumed | grep -c ':itest-stdin-[12]$')" = 2 ]

# 4. ledger.record.max.bytes, at its edge: the size of a padded event is
#    learnt from the reject message under a tiny limit, then one line is
#    padded to exactly the default 262144 bytes and one to a byte more.
maxline() { # maxline ORDER PAD
  python3 -c '
import json, sys
print(json.dumps({"event_id": "itest:max:" + sys.argv[1], "merchant": "m",
    "order_id": "shopify:" + sys.argv[1], "channel": "shopify",
    "type": "OrderUpdated", "source_time": 1767225960000,
    "ingest_time": 1767225960001, "source": "itest",
    "payload": {"note": "x" * int(sys.argv[2])}}))' "$@"
}
maxline itest-max-ok 100000 >"$TMP/probe.jsonl"
ingest probe "$TMP/probe.jsonl" --ledger.record.max.bytes=1000
size=$(sed -n 's/.* is \([0-9]*\) bytes, over ledger.record.max.bytes (1000).*/\1/p' "$TMP/probe.err")
check "record max: a tiny limit rejects the line and says its size ($size)" \
  [ "$(rc_of probe)/${size:+sized}" = 1/sized ] || show_err probe
pad=$((100000 + 262144 - ${size:-0}))
{ maxline itest-max-ok "$pad"; maxline itest-max-no "$((pad + 1))"; } >"$TMP/max.jsonl"
ingest max "$TMP/max.jsonl"
check "record max: one byte over: exit 1 (got $(rc_of max))" [ "$(rc_of max)" = 1 ]
check "record max: $TMP/max.jsonl:2: names the event, 262145 bytes and the key" \
  grep -q "^$TMP/max.jsonl:2: encoded event itest:max:itest-max-no is 262145 bytes, over ledger.record.max.bytes (262144)" \
  "$TMP/max.err" || show_err max
check "record max: summary read=2 accepted=1 rejected=1 acked=1 failed=0" \
  grep -qx "read=2 accepted=1 rejected=1 acked=1 failed=0" "$TMP/max.out"
consumed >"$TMP/got4"
got=$(grep -c ' shopify:itest-max-ok$' "$TMP/got4")/$(grep -c ' shopify:itest-max-no$' "$TMP/got4")
check "record max: the 262144-byte event delivered, the other not ($got)" [ "$got" = 1/0 ]

# 5. A missing topic fails fast and says which topic and what to do.
start=$(date +%s%N)
ingest missing "$EXAMPLES" --topic.prefix="itest-missing-$$-$RANDOM."
ms=$((($(date +%s%N) - start) / 1000000))
check "missing topic: exit 1 (got $(rc_of missing))" [ "$(rc_of missing)" = 1 ]
check "missing topic: fails within 10 s (${ms} ms)" [ "$ms" -lt 10000 ]
check "missing topic: clear message" \
  grep -q "topic itest-missing-.*events: .*Unknown topic.*ops/kafka topics" "$TMP/missing.err" \
  || show_err missing
check "missing topic: no summary (nothing was read)" [ ! -s "$TMP/missing.out" ]

echo "1..$n"
[ "$failed" = 0 ]
