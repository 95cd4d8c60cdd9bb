#!/usr/bin/env python3
"""Cross-checks Waybill's Avro codec against fastavro, an independent Avro
implementation: Parsing Canonical Form, CRC-64-AVRO fingerprints, the
single-object header and the binary encoding, both ways.

usage: test_fastavro.py WB_AVRO_TOOL REPO_ROOT

fastavro is installed (pinned) into REPO_ROOT/.venv, which is git-ignored and
re-used when it already holds the pinned version; the script then re-runs
itself with that venv's interpreter. If pip cannot reach the package index
the test exits 77 (skipped). Output is TAP; the exit status is 0 only if every
check passed.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

FASTAVRO_PIN = "1.12.2"
SCHEMAS = ["OrderEvent", "OrderCommand", "LedgerEntry", "OrderStatus"]
NAMESPACE = "dev.waybill.v1"
SKIP = 77
REEXEC_MARK = "WB_FASTAVRO_VENV"

# Lines pip prints when it cannot reach the index at all.
NETWORK_MARKERS = (
    "NewConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ProxyError",
    "SSLError",
)


def skip(reason):
    print(f"1..0 # SKIP {reason}")
    print(f"SKIP: {reason}", file=sys.stderr)
    sys.exit(SKIP)


# ---- venv bootstrap ------------------------------------------------------


def venv_has_pin(vpy):
    if not vpy.exists():
        return False
    probe = ("import fastavro, sys; "
             f"sys.exit(fastavro.__version__ != {FASTAVRO_PIN!r})")
    return subprocess.run([str(vpy), "-c", probe],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def ensure_venv(root):
    """Returns the venv's python, creating the venv / installing the pin."""
    import fcntl

    venv = root / ".venv"
    vpy = venv / "bin" / "python"
    venv.mkdir(exist_ok=True)
    with open(venv / ".wb-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs install once
        if venv_has_pin(vpy):
            return vpy
        if not vpy.exists():
            r = subprocess.run([sys.executable, "-m", "venv", str(venv)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"cannot create {venv}: {r.stderr.strip()}")
        r = subprocess.run(
            [str(vpy), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "--timeout", "30",
             "--retries", "2", f"fastavro=={FASTAVRO_PIN}"],
            capture_output=True, text=True)
        out = r.stdout + r.stderr
        if r.returncode != 0:
            if any(m in out for m in NETWORK_MARKERS):
                skip(f"pip cannot reach the package index to install "
                     f"fastavro=={FASTAVRO_PIN} (no network)")
            sys.exit(f"pip install fastavro=={FASTAVRO_PIN} failed:\n{out}")
        if not venv_has_pin(vpy):
            sys.exit(f"fastavro=={FASTAVRO_PIN} installed but not importable")
        return vpy


def bootstrap():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if os.environ.get(REEXEC_MARK):
        return
    vpy = ensure_venv(Path(sys.argv[2]).resolve())
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    sys.stdout.flush()
    os.execve(str(vpy), [str(vpy), os.path.abspath(__file__)] + sys.argv[1:],
              env)


# ---- TAP -----------------------------------------------------------------

tests_run = 0
tests_failed = 0


def ok(cond, name, detail=None):
    global tests_run, tests_failed
    tests_run += 1
    if cond:
        print(f"ok {tests_run} - {name}")
    else:
        tests_failed += 1
        print(f"not ok {tests_run} - {name}")
        if detail:
            for line in str(detail).splitlines():
                print(f"#   {line}")
    sys.stdout.flush()
    return cond


def first_diff(a, b):
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
             min(len(a), len(b)))
    return (f"first difference at offset {n}:\n"
            f"  ours:     ...{a[max(0, n - 40):n + 40]!r}\n"
            f"  fastavro: ...{b[max(0, n - 40):n + 40]!r}")


# ---- our tool ------------------------------------------------------------


def tool(args, stdin=None):
    r = subprocess.run([TOOL] + args, input=stdin, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"wb-avro-tool {' '.join(args)} exited "
                           f"{r.returncode}: {r.stderr.strip()}")
    return r.stdout


# ---- canonical JSON <-> fastavro datums ----------------------------------

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes",
              "string"}


def short_name(full):
    return full.rsplit(".", 1)[-1]


def to_datum(schema, value, named, tuples, hint=None, path="$"):
    """Canonical JSON (Waybill's: plain unions, hex bytes, optional fields
    may be absent) -> the Python datum fastavro reads/writes. With tuples,
    the OrderEvent payload union is given as fastavro's (name, value)
    notation so that records of the same shape go to the right branch."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            if schema == "bytes":
                return bytes.fromhex(value)
            return value
        return to_datum(named[schema], value, named, tuples, hint, path)
    if isinstance(schema, list):
        if value is None and "null" in schema:
            return None
        branches = [b for b in schema if b != "null"]
        if hint is not None:
            names = [b if isinstance(b, str) else b.get("name")
                     for b in branches]
            matches = [b for b, n in zip(branches, names)
                       if n and short_name(n) == hint]
            if len(matches) != 1:
                raise ValueError(f"{path}: no union branch named {hint}")
            branch = matches[0]
            full = branch if isinstance(branch, str) else branch["name"]
            datum = to_datum(branch, value, named, tuples, None, path)
            return (full, datum) if tuples else datum
        if len(branches) != 1:
            raise ValueError(f"{path}: ambiguous union without a hint")
        return to_datum(branches[0], value, named, tuples, None, path)
    t = schema["type"]
    if t in ("record", "error"):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object")
        known = {f["name"] for f in schema["fields"]}
        extra = set(value) - known
        if extra:
            raise ValueError(f"{path}: unknown fields {sorted(extra)}")
        out = {}
        for f in schema["fields"]:
            name = f["name"]
            if name in value:
                v = value[name]
            elif "default" in f:
                v = f["default"]
            else:
                raise ValueError(f"{path}: missing field {name}")
            h = value.get("type") if name == "payload" else None
            out[name] = to_datum(f["type"], v, named, tuples,
                                 h if isinstance(h, str) else None,
                                 f"{path}.{name}")
        return out
    if t == "enum":
        if value not in schema["symbols"]:
            raise ValueError(f"{path}: {value!r} not a symbol")
        return value
    if t == "array":
        return [to_datum(schema["items"], v, named, tuples, None,
                         f"{path}[{i}]") for i, v in enumerate(value)]
    if t == "map":
        return {k: to_datum(schema["values"], v, named, tuples, None,
                            f"{path}.{k}") for k, v in value.items()}
    if t == "fixed":
        return bytes.fromhex(value)
    return to_datum(t, value, named, tuples, hint, path)


def to_json(datum):
    """fastavro datum -> Waybill canonical JSON (bytes as lower-case hex)."""
    if isinstance(datum, (bytes, bytearray)):
        return datum.hex()
    if isinstance(datum, tuple):
        return to_json(datum[1])
    if isinstance(datum, dict):
        return {k: to_json(v) for k, v in datum.items()}
    if isinstance(datum, list):
        return [to_json(v) for v in datum]
    return datum


def payload_names(datum, out):
    """Union branch names fastavro read for every OrderEvent payload, found
    with return_record_name=True (payload comes back as (name, record))."""
    if isinstance(datum, dict):
        if "payload" in datum and isinstance(datum.get("type"), str):
            p = datum["payload"]
            out.append((datum["type"],
                        p[0] if isinstance(p, tuple) else None))
        for v in datum.values():
            payload_names(v, out)
    elif isinstance(datum, list):
        for v in datum:
            payload_names(v, out)
    elif isinstance(datum, tuple):
        payload_names(datum[1], out)


# ---- records of the other schemas ----------------------------------------


def extra_records(repo):
    lines = (repo / "schemas" / "examples" /
             "all-types.jsonl").read_text().splitlines()
    events = [json.loads(l) for l in lines if l.strip()]
    by_type = {e["type"]: e for e in events}
    ex_event = by_type.get("OrderPlaced", events[0])
    ex_event2 = by_type.get("ReturnApproved", events[-1])
    return {
        "OrderCommand": [
            {"action_id": "act-01J9Z", "merchant": "acme.myshopify.com",
             "order_id": "shopify:820982911946154508",
             "kind": "change_address",
             "parameters": {
                 "reason": None,
                 "address": {"name": "Zoë Ünicode ✓", "company": None,
                             "line1": "9 New Road", "line2": "Apt 4",
                             "city": "Louisville", "region": "Kentucky",
                             "postal_code": "40202", "country_code": "US",
                             "phone": "+1 502 555 0100"},
                 "amount": {"amount": -4199, "currency": "USD"},
                 "lines": [{"line_id": "866550311766439020",
                            "sku": "IPOD-342-N", "quantity": 2147483647},
                           {"line_id": None, "sku": None,
                            "quantity": -2147483648}],
                 "note": "customer moved \U0001f69a"},
             "requester": "agent:support-bot",
             "idempotency_key": "conv-5521-addr",
             "expected_version": 9223372036854775807,
             "requested_at": 1767225700000,
             "correlation_id": "act-01J9Z"},
            # every optional field left out: defaults apply
            {"action_id": "a", "merchant": "m", "order_id": "pos:1",
             "kind": "cancel", "parameters": {}, "requester": "r",
             "idempotency_key": "k", "requested_at": 0},
        ],
        "OrderStatus": [
            {"order_id": "shopify:820982911946154508",
             "merchant": "acme.myshopify.com", "channel": "shopify",
             "name": "#1001", "version": 12, "ledger_partition": 3,
             "ledger_seq": 4294967296, "customer_status": "shipped",
             "order_status": "open", "payment_status": "paid",
             "fulfillment_status": "fulfilled",
             "tracking_numbers": ["1z827wk74630", "1z827wk74631"],
             "total": {"amount": 21988, "currency": "USD"},
             "updated_at": 1767754800700},
            {"order_id": "pos:store12-000123", "merchant": "acme",
             "channel": "pos", "version": 1, "ledger_partition": 0,
             "ledger_seq": 1, "customer_status": "placed",
             "order_status": "open", "fulfillment_status": "unfulfilled",
             "tracking_numbers": [], "updated_at": -1},
        ],
        "LedgerEntry": [
            {"partition": 2147483647, "seq": 1, "version": 1,
             "recorded_at": 1767225601234, "prev_hash": "00" * 32,
             "hash": "9f86d081884c7d659a2feaa0c55ad015"
                     "a3bf4f1b2b0b822cd15d6c15b0f00a08",
             "event": ex_event},
            {"partition": 0, "seq": 9223372036854775807, "version": 64,
             "recorded_at": 0, "prev_hash": "ff" * 32,
             "hash": "0123456789abcdef" * 4, "event": ex_event2},
        ],
    }


# ---- the checks ------------------------------------------------------------


def check_schema(fastavro, repo, name, records):
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    raw = json.loads((repo / "schemas" / f"{name}.avsc").read_text())
    named = {}
    parsed = fastavro.parse_schema(raw, named_schemas=named)

    # Parsing Canonical Form
    ours_pcf = tool(["pcf", name]).rstrip("\n")
    their_pcf = to_parsing_canonical_form(parsed)
    ok(ours_pcf == their_pcf, f"{name}: Parsing Canonical Form",
       None if ours_pcf == their_pcf else first_diff(ours_pcf, their_pcf))

    # CRC-64-AVRO. fastavro returns the 8 fingerprint bytes in little-endian
    # order (as Java's SchemaNormalization.fingerprint and the single-object
    # header do); our tool prints the uint64 value most significant first.
    ours_fp = tool(["fingerprint", name]).strip()
    fp_le = bytes.fromhex(fingerprint(their_pcf, "CRC-64-AVRO"))
    fp_le_of_ours = bytes.fromhex(fingerprint(ours_pcf, "CRC-64-AVRO"))
    ok(len(ours_fp) == 16 and ours_fp == fp_le[::-1].hex(),
       f"{name}: CRC-64-AVRO fingerprint {ours_fp}",
       f"ours {ours_fp}, fastavro {fp_le[::-1].hex()} "
       f"(little-endian bytes {fp_le.hex()})")
    ok(fp_le_of_ours == fp_le,
       f"{name}: fastavro's CRC-64-AVRO of our PCF is the same")
    header = b"\xc3\x01" + fp_le

    # our bytes -> fastavro
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    ours_hex = tool(["encode", name], "\n".join(lines) + "\n").split()
    ok(len(ours_hex) == len(records),
       f"{name}: encode gave one message per record",
       f"{len(ours_hex)} messages for {len(records)} records")
    fastavro_hex = []
    for i, (rec, hexmsg) in enumerate(zip(records, ours_hex)):
        label = f"{name}[{i}]"
        if "type" in rec:
            label += f" {rec['type']}"
        expect = to_json(to_datum(parsed, rec, named, tuples=False))
        msg = bytes.fromhex(hexmsg)
        ok(msg[:2] == b"\xc3\x01", f"{label}: C3 01 marker")
        ok(msg[2:10] == fp_le,
           f"{label}: header carries the fingerprint little-endian",
           f"header {msg[2:10].hex()}, fingerprint LE {fp_le.hex()}")
        body = msg[10:]
        fo = io.BytesIO(body)
        got = fastavro.schemaless_reader(fo, parsed)
        ok(fo.tell() == len(body),
           f"{label}: fastavro consumed the whole body",
           f"{len(body) - fo.tell()} bytes left")
        ok(to_json(got) == expect, f"{label}: fastavro reads our bytes",
           f"fastavro: {json.dumps(to_json(got))}\n"
           f"expected: {json.dumps(expect)}")
        branches = []
        payload_names(fastavro.schemaless_reader(
            io.BytesIO(body), parsed, return_record_name=True), branches)
        for typ, full in branches:
            ok(full == f"{NAMESPACE}.{typ}",
               f"{label}: payload union branch is {typ}",
               f"fastavro read branch {full}")

        # fastavro's bytes -> ours
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed,
                                   to_datum(parsed, rec, named, tuples=True))
        theirs = header + out.getvalue()
        ok(theirs == msg, f"{label}: fastavro writes the same bytes",
           f"ours:     {msg.hex()}\nfastavro: {theirs.hex()}")
        fastavro_hex.append(theirs.hex())

    decoded = tool(["decode", name], "\n".join(fastavro_hex) + "\n")
    decoded = [json.loads(l) for l in decoded.splitlines() if l.strip()]
    ok(len(decoded) == len(records),
       f"{name}: decode gave one JSON line per message")
    for i, (rec, got) in enumerate(zip(records, decoded)):
        expect = to_json(to_datum(parsed, rec, named, tuples=False))
        ok(got == expect, f"{name}[{i}]: we decode fastavro's bytes",
           f"ours:     {json.dumps(got)}\nexpected: {json.dumps(expect)}")


def main():
    bootstrap()
    global TOOL
    TOOL = os.path.abspath(sys.argv[1])
    repo = Path(sys.argv[2]).resolve()
    import fastavro

    print(f"# fastavro {fastavro.__version__} "
          f"(Python {sys.version.split()[0]})")
    examples = (repo / "schemas" / "examples" /
                "all-types.jsonl").read_text().splitlines()
    records = {"OrderEvent": [json.loads(l) for l in examples if l.strip()]}
    records.update(extra_records(repo))
    for name in SCHEMAS:
        try:
            check_schema(fastavro, repo, name, records[name])
        except Exception as e:  # a crash is one failed check, not a stop
            ok(False, f"{name}: checks ran to the end",
               f"{type(e).__name__}: {e}")
    print(f"1..{tests_run}")
    print(f"# {tests_run - tests_failed} passed, {tests_failed} failed")
    return 1 if tests_failed else 0


TOOL = None

if __name__ == "__main__":
    sys.exit(main())
