#!/usr/bin/env python3
"""waybill-projector's HTTP API against real processes, with tokens made by
`waybill token new`. Two backends:

  (default)    tests/tools/wb_http_harness.c: the real HTTP server over a
               real ledger and read-model store, no broker (suite
               integration);
  --pipeline   the whole chain on the real broker: waybill-ingest events ->
               waybill-ledger -> waybill-projector (suite e2e; exits 77
               without a broker). The checks that need to set a
               partition's lag by hand, and the rate-limit run, are the
               harness's only.

Checks: every answer against GET /v1/openapi.json (which itself must be a
valid OpenAPI 3.1 document); 401/403/404/405/413/414/429 paths; BOLA: two
merchants' orders and returns through every endpoint and id parameter with
the other merchant's token give answers identical to a missing id (body and
headers, Date aside); lookups never cross merchants; bad requests (bad ids,
a 10 KB query string, bad JSON, unknown routes, wrong methods) get 4xx with
a JSON error body and the server lives on; ?min_position waits (without
holding a worker) and reports being behind; the answer cache never serves a
changed order; /readyz follows the lag; tokens-file reload; the metrics
text parses under a strict parser. TAP output.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import wbtest as T  # noqa: E402
import wbhttp as W  # noqa: E402

W.venv(T.ROOT)

HARNESS = os.path.join(T.BIN, "tests", "wb-http-harness")
WAYBILL = T.exe("waybill")
EXAMPLES = os.path.join(T.ROOT, "schemas", "examples", "all-types.jsonl")
T0 = 1767225600000
MERCHANTS = ["acme.myshopify.com", "globex.myshopify.com"]
ORDERS_PER_MERCHANT = 6
PIPELINE_PARTITIONS = 3


def q(s):
    return urllib.parse.quote(s, safe="")


def events_for(m, mi, k):
    """Events of order k of merchant m: placed, paid, shipped, and for some
    a refund, a return and a late in_transit after delivered."""
    oid = "shopify:%d" % (9100000000000000000 + mi * 1000 + k)
    name = "#9%d%03d" % (mi, k)
    email = "buyer%d@%s" % (k, m.split(".")[0] + ".example")
    tn = "1ZTEST%d%03d" % (mi, k)
    ret = "ret-%d-%d" % (mi, k)
    base = {"merchant": m, "order_id": oid, "channel": "shopify",
            "source": "test"}
    t = T0 + k * 60000
    money = lambda a: {"amount": a, "currency": "USD"}  # noqa: E731
    line = {"line_id": "l1", "sku": "SKU-%d" % k, "title": "Thing %d" % k,
            "quantity": 2, "unit_price": money(1500)}
    evs = [("OrderPlaced", t, {
        "name": name, "email": email, "phone": None, "currency": "USD",
        "totals": {"subtotal": money(3000), "shipping": money(500),
                   "tax": None, "discounts": None, "total": money(3500)},
        "lines": [line],
        "shipping_address": {"name": "B %d" % k, "company": None, "line1": "1 Road",
                             "line2": None, "city": "Town", "region": None,
                             "postal_code": "12345", "country_code": "US",
                             "phone": None},
        "placed_at": t}),
        ("PaymentStatusChanged", t + 1000, {"status": "paid", "amount_paid": money(3500)})]
    if k % 3 != 0:
        evs.append(("FulfillmentCreated", t + 2000, {
            "fulfillment_id": "f-%d-%d" % (mi, k),
            "lines": [{"line_id": "l1", "sku": "SKU-%d" % k, "quantity": 2}],
            "carrier": "UPS", "tracking_numbers": [tn],
            "tracking_urls": ["https://ups.example/%s" % tn]}))
        evs.append(("ShipmentStatusChanged", t + 3000, {
            "fulfillment_id": "f-%d-%d" % (mi, k), "tracking_number": tn, "carrier": "UPS",
            "status": "delivered", "carrier_time": t + 3000, "location": "Town",
            "estimated_delivery": None}))
        evs.append(("ShipmentStatusChanged", t + 2500, {  # late news, arrives last
            "fulfillment_id": "f-%d-%d" % (mi, k), "tracking_number": tn, "carrier": "UPS",
            "status": "in_transit", "carrier_time": t + 2500, "location": "Hub",
            "estimated_delivery": None}))
    if k % 2 == 1:
        evs.append(("ReturnRequested", t + 5000, {
            "return_id": ret, "lines": [{"line_id": "l1", "sku": "SKU-%d" % k, "quantity": 1}],
            "reason": "too_small"}))
    if k % 4 == 2:
        evs.append(("RefundIssued", t + 6000, {
            "refund_id": "r-%d-%d" % (mi, k), "amount": money(1500),
            "lines": [{"line_id": "l1", "sku": "SKU-%d" % k, "quantity": 1}],
            "restock": True, "reason": None}))
    out = []
    for i, (typ, st, payload) in enumerate(evs):
        e = dict(base, event_id="test:%s:%d:%d" % (oid, k, i), type=typ,
                 source_time=st, ingest_time=st + 100, payload=payload)
        out.append(e)
    info = {"id": oid, "name": name, "email": email,
            "tracking": tn if k % 3 != 0 else None,
            "return": ret if k % 2 == 1 else None,
            "channel_order_id": oid.split(":", 1)[1]}
    return out, info


def make_token(merchant, scopes):
    r = T.run([WAYBILL, "token", "new", "--merchant", merchant, "--scopes", scopes])
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stderr
    return lines[0], lines[1]


class Harness:
    def __init__(self, tmp, name, events, tokens_file, extra=()):
        self.data = os.path.join(tmp, name)
        self.log = open(os.path.join(tmp, name + ".log"), "wb")
        self.p = subprocess.Popen(
            [HARNESS, "--data", self.data, "--events", events,
             "--projector.http.listen=127.0.0.1:0",
             "--projector.tokens.file=" + tokens_file] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        line = self.p.stdout.readline().decode()
        if not line.startswith("listening"):
            raise RuntimeError("harness did not start: %r (see %s.log)" % (line, self.data))
        f = dict(kv.split("=") for kv in line.split()[1:])
        self.port = int(f["port"])
        self.position = int(f["position"])

    def send(self, line):
        """Writes one stdin line; returns the harness's answer line."""
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        return self.p.stdout.readline().decode().strip()

    def apply(self, events):
        self.p.stdin.write("".join(json.dumps(e) + "\n" for e in events).encode())
        self.p.stdin.flush()
        ans = self.p.stdout.readline().decode().strip()
        return int(ans.split("=")[1]) if ans.startswith("applied") else None

    can_set_lag = True

    def stop(self):
        self.p.stdin.close()
        self.p.terminate()
        try:
            rc = self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = -9
        self.log.close()
        return rc


class Pipeline:
    """waybill-ledger and waybill-projector on a private topic prefix;
    apply() ingests with waybill-ingest and waits for the projection."""
    can_set_lag = False

    def __init__(self, tmp, topics, events, tokens_file, extra=()):
        self.tmp, self.topics, self.n = tmp, topics, 0
        self.ledger = T.Proc([T.exe("waybill-ledger"), "--data-dir=" + os.path.join(tmp, "ledger"),
                              "--ledger.batch.wait.ms=5"] + T.common_flags(topics),
                             os.path.join(tmp, "ledger.log")).start()
        self.proj = T.Proc([T.exe("waybill-projector"), "--data-dir=" + os.path.join(tmp, "proj"),
                            "--projector.http.listen=127.0.0.1:0",
                            "--projector.tokens.file=" + tokens_file,
                            "--projector.batch.wait.ms=5", "--projector.stats.interval.ms=200"]
                           + T.common_flags(topics) + list(extra),
                           os.path.join(tmp, "projector.log")).start()
        self.port = None
        for _ in range(300):
            m = re.search(r"event=http_listening listen=127\.0\.0\.1:(\d+)", self.proj.log_tail(100))
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.1)
        if not self.port:
            raise RuntimeError("waybill-projector did not listen:\n" + self.proj.log_tail())
        self.position = self._ingest_file(events, sum(1 for _ in open(events)))

    def _metric(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^%s (\S+)$" % name, text, re.M)
        return float(m.group(1)) if m else None

    def _ingest_file(self, path, count):
        r = T.run([T.exe("waybill-ingest"), "events", path] + T.common_flags(self.topics))
        if r.returncode:
            raise RuntimeError("waybill-ingest: %s" % r.stderr.decode()[-500:])
        self.n += count
        if not T.wait_for(lambda: self._metric("waybill_projector_position") == self.n, 120, 0.05):
            raise RuntimeError("projection stuck at %s of %d:\n%s" % (
                self._metric("waybill_projector_position"), self.n, self.proj.log_tail()))
        return self.n

    def apply(self, events):
        path = os.path.join(self.tmp, "more.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events))
        return self._ingest_file(path, len(events))

    def send(self, line):
        raise RuntimeError("the pipeline cannot set a lag by hand")

    def stop(self):
        rc = self.proj.stop()
        self.ledger.stop()
        return rc


def same_answer(a, b):
    ha = {k: v for k, v in a.headers.items() if k != "date"}
    hb = {k: v for k, v in b.headers.items() if k != "date"}
    return a.status == b.status and a.body == b.body and ha == hb


def main():
    pipeline = "--pipeline" in sys.argv[1:]
    if pipeline:
        T.require_broker()
    with T.TempDir() as tmp:
        # ---- data and tokens ------------------------------------------------
        events, orders = [], {m: [] for m in MERCHANTS}
        for mi, m in enumerate(MERCHANTS):
            for k in range(ORDERS_PER_MERCHANT):
                evs, info = events_for(m, mi, k)
                events += evs
                orders[m].append(info)
        with open(EXAMPLES) as f:
            examples = [json.loads(x) for x in f if x.strip()]
        ev_path = os.path.join(tmp, "events.jsonl")
        with open(ev_path, "w") as f:
            for e in events + examples:
                f.write(json.dumps(e) + "\n")
        tok = {}
        lines = []
        for name, merchant, scopes in [("a", MERCHANTS[0], "read"),
                                       ("b", MERCHANTS[1], "read,act"),
                                       ("a_act", MERCHANTS[0], "act"),
                                       ("ex", "acme.myshopify.com", "read"),
                                       ("pos", "acme", "read"),
                                       ("amz", "ATVPDKIKX0DER", "read")]:
            tok[name], line = make_token(merchant, scopes)
            lines.append(line)
        T.ok(all(l.split()[0] != tok[n] and tok[n].startswith("wbt_") and len(tok[n]) == 47
                 for l, n in zip(lines, tok)),
             "`waybill token new` prints a wbt_ token and a hash line without it")
        tokens_file = os.path.join(tmp, "tokens")
        with open(tokens_file, "w") as f:
            f.write("# test tokens\n" + "\n".join(lines) + "\n")

        flags = ["--projector.http.rate.limit=0", "--projector.http.wait.max.ms=1500",
                 "--projector.ready.max.lag=10"]
        if pipeline:
            with T.Topics("projhttp", PIPELINE_PARTITIONS) as topics:
                h = Pipeline(tmp, topics, ev_path, tokens_file, flags)
                try:
                    run_checks(h, tok, orders, tokens_file, tmp, examples)
                finally:
                    rc = h.stop()
                    T.ok(rc == 0, "waybill-projector stopped cleanly on SIGTERM (rc %s)" % rc)
        else:
            h = Harness(tmp, "main", ev_path, tokens_file, flags)
            try:
                run_checks(h, tok, orders, tokens_file, tmp, examples)
            finally:
                rc = h.stop()
                T.ok(rc == 0, "harness stopped cleanly on SIGTERM (rc %s)" % rc)
            rate_limit_checks(tmp, ev_path, tokens_file, tok)
            staleness_checks(tmp, tokens_file, tok, events[0])
    T.done()


def run_checks(h, tok, orders, tokens_file, tmp, examples):
    api = W.Api(h.port)
    from openapi_spec_validator import validate
    try:
        validate(api.openapi.doc)
        T.ok(True, "GET /v1/openapi.json is a valid OpenAPI 3.1 document")
    except Exception as e:  # noqa: BLE001
        T.ok(False, "GET /v1/openapi.json is a valid OpenAPI 3.1 document: %s" % e)
    doc_paths = set(api.openapi.doc["paths"])
    T.ok({"/v1/orders/{id}", "/v1/orders", "/v1/orders/{id}/timeline",
          "/v1/orders/{id}/returns", "/v1/returns/{id}", "/healthz", "/readyz",
          "/metrics", "/v1/openapi.json"} <= doc_paths, "every route is described")

    a, b = MERCHANTS
    # ---- the happy paths, both merchants ------------------------------------
    good = True
    for m, t in ((a, tok["a"]), (b, tok["b"])):
        for o in orders[m]:
            for path in ("/v1/orders/%s" % q(o["id"]), "/v1/orders/%s" % o["id"],
                         "/v1/orders/%s/timeline" % q(o["id"]),
                         "/v1/orders/%s/returns" % q(o["id"])):
                r = api.get(path, t)
                good = good and r.status == 200
                j = r.json()
                good = good and j["position"] == h.position and "freshness" in j
                good = good and r.headers.get("waybill-position") == str(h.position)
            if o["return"]:
                r = api.get("/v1/returns/%s" % q(o["return"]), t)
                good = good and r.status == 200 and r.json()["return"]["order_id"] == o["id"]
    T.ok(good, "orders, timelines, returns of both merchants: 200 with position and freshness")
    r1 = api.get("/v1/orders/%s" % q(orders[a][1]["id"]), tok["a"])
    r2 = api.get("/v1/orders/%s" % orders[a][1]["id"], tok["a"])
    T.ok(r1.body == r2.body, "percent-encoded and raw ids give the same answer")
    j = r1.json()
    T.ok(j["order"]["order_id"] == orders[a][1]["id"] and j["order"]["merchant"] == a,
         "the order is the one asked for, of the token's merchant")
    T.ok(j["order"]["shipments"][0]["status"] == "delivered",
         "a late in_transit after delivered does not move the status back")
    fr = j["freshness"]
    T.ok(fr["caught_up"] is True and fr["projection_lag_ms"] == 0 and
         fr["latest_source_time"] >= T0, "freshness: caught up, lag 0, latest source time")
    tl = api.get("/v1/orders/%s/timeline" % q(orders[a][1]["id"]), tok["a"]).json()["timeline"]
    T.ok([e["version"] for e in tl] == list(range(1, len(tl) + 1)) and
         any(e.get("applied") is False for e in tl), "timeline in version order, late event marked")
    for e in examples:  # every event type through the API and the schema
        t = {"acme.myshopify.com": tok["ex"], "acme": tok["pos"],
             "ATVPDKIKX0DER": tok["amz"]}[e["merchant"]]
        api.get("/v1/orders/%s" % q(e["order_id"]), t)
        api.get("/v1/orders/%s/timeline" % q(e["order_id"]), t)
        api.get("/v1/orders/%s/returns" % q(e["order_id"]), t)
    r = api.request("HEAD", "/v1/orders/%s" % q(orders[a][0]["id"]), tok["a"])
    T.ok(r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 100,
         "HEAD: headers only")

    # ---- lookups ------------------------------------------------------------
    good = True
    for m, t in ((a, tok["a"]), (b, tok["b"])):
        for o in orders[m]:
            for kind in ("email", "name", "tracking", "channel_order_id"):
                if not o[kind]:
                    continue
                val = o[kind].upper() if kind == "email" else o[kind]
                r = api.get("/v1/orders?%s=%s" % (kind, q(val)), t)
                ids = [x["order_id"] for x in r.json()["orders"]] if r.status == 200 else None
                if ids != [o["id"]]:
                    good = False
                    T.diag("lookup %s=%s as %s: %s %s" % (kind, val, m, r.status, ids))
    T.ok(good, "lookups by email (any case), name, tracking, channel order id")
    r = api.get("/v1/orders?email=%s&limit=1" % q(orders[a][0]["email"]), tok["a"])
    T.ok(r.status == 200 and r.json()["has_more"] is False and len(r.json()["orders"]) == 1,
         "limit and has_more")

    # ---- BOLA ---------------------------------------------------------------
    n = same = 0
    for owner, other in ((a, tok["b"]), (b, tok["a"])):
        for o in orders[owner]:
            paths = [("/v1/orders/%s", o["id"], "/v1/orders/%s", "shopify:404404404"),
                     ("/v1/orders/%s/timeline", o["id"], "/v1/orders/%s/timeline", "shopify:404404404"),
                     ("/v1/orders/%s/returns", o["id"], "/v1/orders/%s/returns", "shopify:404404404")]
            if o["return"]:
                paths.append(("/v1/returns/%s", o["return"], "/v1/returns/%s", "ret-missing-404"))
            for tmpl, theirs, tmpl2, missing in paths:
                for enc in (q, lambda s: s):
                    for suffix in ("", "?min_position=0"):
                        x = api.get(tmpl % enc(theirs) + suffix, other)
                        y = api.get(tmpl2 % enc(missing) + suffix, other)
                        n += 1
                        if x.status == 404 and same_answer(x, y):
                            same += 1
                        else:
                            T.diag("BOLA differs: %s vs %s:\n  %s %s\n  %s %s" % (
                                tmpl % theirs, missing, x.status, x.body[:200],
                                y.status, y.body[:200]))
            for kind in ("email", "name", "tracking", "channel_order_id"):
                if o[kind]:
                    x = api.get("/v1/orders?%s=%s" % (kind, q(o[kind])), other)
                    y = api.get("/v1/orders?%s=%s" % (kind, q("nobody-" + o[kind])), other)
                    n += 1
                    if x.status == 200 and x.json()["orders"] == [] and same_answer(x, y):
                        same += 1
                    else:
                        T.diag("BOLA lookup differs: %s=%s" % (kind, o[kind]))
    T.ok(n > 100 and same == n, "BOLA: %d/%d cross-tenant requests answered exactly as missing ids" % (same, n))
    # timing: foreign vs missing, interleaved medians
    fa, mi = [], []
    for i in range(300):
        for lst, oid in ((fa, orders[a][i % 6]["id"]), (mi, "shopify:%d" % (555000 + i % 6))):
            t0 = time.perf_counter()
            api.get("/v1/orders/%s" % q(oid), tok["b"], check=False)
            lst.append(time.perf_counter() - t0)
    fa.sort()
    mi.sort()
    T.ok(abs(fa[150] - mi[150]) < max(0.5 * mi[150], 0.0002),
         "BOLA timing: median foreign %.0f us vs missing %.0f us" % (fa[150] * 1e6, mi[150] * 1e6))

    # ---- auth -----------------------------------------------------------------
    oid = q(orders[a][0]["id"])
    r = api.get("/v1/orders/" + oid)
    T.ok(r.status == 401 and r.headers.get("www-authenticate", "").startswith("Bearer")
         and r.json()["error"] == "unauthorized", "no token: 401 with WWW-Authenticate: Bearer")
    r = api.get("/v1/orders/" + oid, "wbt_" + "x" * 43)
    T.ok(r.status == 401 and 'error="invalid_token"' in r.headers.get("www-authenticate", ""),
         "unknown token: 401 invalid_token")
    r = api.get("/v1/orders/" + oid, headers={"Authorization": "Basic " + tok["a"]})
    T.ok(r.status == 401, "Basic scheme: 401")
    r = api.get("/v1/orders/" + oid, headers={"Authorization": "bearer  " + tok["a"]})
    T.ok(r.status == 200, "scheme is case-insensitive")
    r = api.get("/v1/orders/" + oid, tok["a"][:-1])
    T.ok(r.status == 401, "a token one character short: 401")
    line_a = None
    with open(tokens_file) as f:
        for ln in f:
            if ln.strip() and not ln.startswith("#"):
                line_a = ln.split()[0]
                break
    r = api.get("/v1/orders/" + oid, line_a)
    T.ok(r.status == 401, "the stored hash is not a token")
    r = api.get("/v1/orders/" + oid, tok["a_act"])
    T.ok(r.status == 403 and 'insufficient_scope' in r.headers.get("www-authenticate", "")
         and r.json()["error"] == "forbidden", "act-only token on a read route: 403")
    r = api.get("/v1/orders/" + oid + "/timeline")
    T.ok(r.status == 401 and "position" not in r.json(),
         "unauthenticated answers carry no position")
    # two Authorization headers: refused whichever comes first (the HTTP
    # library hands out only the first, so valid-then-invalid was a 200)
    good, bad = tok["a"].encode(), b"wbt_" + b"x" * 43
    for first, second, what in ((good, bad, "valid then invalid"),
                                (bad, good, "invalid then valid"),
                                (good, good, "the same token twice")):
        st, hd, body = W.raw_request(
            h.port, b"GET /v1/orders/" + oid.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + first + b"\r\nauthorization: Bearer " + second +
            b"\r\nConnection: close\r\n\r\n")
        try:
            err = json.loads(body)
        except ValueError:
            err = {}
        T.ok(st == 400 and err.get("error") == "bad_request" and "position" not in err
             and 'error="invalid_request"' in hd.get("www-authenticate", ""),
             "two Authorization headers (%s): 400 bad_request (%d %r)" % (what, st, body[:80]))

    # ---- bad requests -----------------------------------------------------------
    bad = [("/v1/orders/%zz", 400, "bad_id"), ("/v1/orders/a%00b", 400, "bad_id"),
           ("/v1/orders/%0Ax", 400, "bad_id"), ("/v1/orders/" + "x" * 300, 400, "bad_id"),
           ("/v1/orders/%C3%28", 400, "bad_id"),
           ("/v1/returns/%zz", 400, "bad_id"), ("/v1/orders/%zz/timeline", 400, "bad_id"),
           ("/v1/orders", 400, "bad_parameter"),
           ("/v1/orders?email=a&name=b", 400, "bad_parameter"),
           ("/v1/orders?email=", 400, "bad_parameter"),
           ("/v1/orders?email=a%zz", 400, "bad_parameter"),
           ("/v1/orders?email=a&limit=0", 400, "bad_parameter"),
           ("/v1/orders?email=a&limit=101", 400, "bad_parameter"),
           ("/v1/orders?email=a&limit=x", 400, "bad_parameter"),
           ("/v1/orders/x?min_position=-1", 400, "bad_parameter"),
           ("/v1/orders/x?min_position=1&min_position=2", 400, "bad_parameter"),
           ("/v1/orders/x?wait_ms=10", 400, "bad_parameter"),
           ("/v1/orders/x?bogus=1", 400, "unknown_parameter"),
           ("/v1/orders/x?email=a", 400, "unknown_parameter"),
           ("/v1/orders?email=" + "a" * 10240, 414, "uri_too_long"),
           ("/v1/orders/x?" + "&".join("param_%04d=valuevalue" % i for i in range(480)), 400,
            "unknown_parameter"),
           ("/v1/orders/x?min_position=1&" + "&".join("wait_ms=%04d" % i for i in range(800)), 400,
            "bad_parameter"),
           ("/v1/nothing", 404, "not_found"), ("/", 404, "not_found"),
           ("/v1/orders/", 404, "not_found"), ("/v1/orders/x/", 404, "not_found"),
           ("/v1/orders//timeline", 404, "not_found"), ("/v2/orders/x", 404, "not_found"),
           ("/v1/orders/x/actions/explode", 404, "not_found")]
    good = True
    for path, status, code in bad:
        r = api.get(path, tok["a"])
        try:
            okay = r.status == status and r.json()["error"] == code
        except ValueError:
            okay = False
        if not okay:
            good = False
            T.diag("%s: %s %s (want %s %s)" % (path[:80], r.status, r.body[:120], status, code))
    T.ok(good, "%d bad requests: the right 4xx and a JSON error body" % len(bad))
    j = api.get("/v1/orders/x?bogus=1", tok["a"]).json()
    T.ok("position" in j and "freshness" in j,
         "errors to authorized requests carry position and freshness too")
    good = True
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/v1/orders/" + oid, "/v1/orders?email=a", "/healthz", "/metrics",
                     "/v1/openapi.json", "/v1/returns/x"):
            r = api.request(method, path, tok["a"], body=b"{}" if method != "OPTIONS" else None)
            if r.status != 405 or "GET" not in r.headers.get("allow", "") or \
                    r.json()["error"] != "method_not_allowed":
                good = False
                T.diag("%s %s: %s" % (method, path, r.status))
    T.ok(good, "wrong methods: 405 with Allow and a JSON error")
    act = "/v1/orders/%s/actions/cancel" % oid
    r = api.request("POST", act, tok["b"], body=b"{not json", headers={"Content-Type": "application/json"})
    T.ok(r.status == 400 and r.json()["error"] == "bad_json", "bad JSON body: 400 bad_json")
    r = api.request("POST", act, tok["b"], body=b"[1,2]", headers={"Content-Type": "application/json"})
    T.ok(r.status == 400 and r.json()["error"] == "bad_json", "a JSON array body: 400 bad_json")
    r = api.request("POST", act, tok["b"], body=b"{}", headers={"Content-Type": "application/json"})
    T.ok(r.status == 501 and r.json()["error"] == "not_implemented", "actions: 501 for now")
    r = api.request("POST", act, tok["a"], body=b"{}")
    T.ok(r.status == 403, "action with a read-only token: 403")
    r = api.request("POST", act, None, body=b"{}")
    T.ok(r.status == 401, "action without a token: 401")
    r = api.request("POST", act, tok["b"], body=b"{" + b'"a":1,' * 20000 + b'"z":1}')
    T.ok(r.status == 413 and r.json()["error"] == "body_too_large", "a body over 64 KiB: 413")
    r = api.get(act, tok["b"])
    T.ok(r.status == 405 and r.headers.get("allow") == "POST", "GET on an action route: 405 Allow: POST")
    st, hd, body = W.raw_request(h.port, b"GET /v1/orders/" + b"x" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    T.ok(st in (400, 414, 431), "a 70 KB request line is refused by the HTTP library (%d)" % st)
    st, hd, body = W.raw_request(h.port, b"GET /v1/orders/x?" + b"&".join(b"a" for _ in range(5000)) +
                                 b" HTTP/1.1\r\nHost: x\r\n\r\n")
    T.ok(st in (0, 400, 414, 431), "5000 query parameters: refused or closed by the HTTP library (%d)" % st)
    st, hd, body = W.raw_request(h.port, b"GARBAGE\r\n\r\n")
    T.ok(st == 400 or st == 0, "a malformed request line: 400 or closed (%d)" % st)
    st, hd, body = W.raw_request(h.port, b"GET /v1/orders/a\x01b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                 + tok["a"].encode() + b"\r\n\r\n")
    T.ok(st == 400, "a raw control character in the path: 400 (%d)" % st)
    T.ok(api.get("/healthz").status == 200, "alive after the bad requests")

    # ---- min_position -------------------------------------------------------------
    o = orders[a][0]
    path = "/v1/orders/%s" % q(o["id"])
    before = api.get(path, tok["a"]).json()
    pos = before["position"]
    upd = {"event_id": "test:upd:1", "merchant": a, "order_id": o["id"], "channel": "shopify",
           "type": "OrderUpdated", "source_time": T0 + 10 ** 7, "ingest_time": T0 + 10 ** 7,
           "source": "test", "payload": {"email": "changed@example.com", "phone": None,
                                         "note": None, "lines": None, "totals": None}}
    res = {}

    def waiter():
        c = W.Api(h.port, openapi=api.openapi)
        t0 = time.time()
        res["r"] = c.get(path + "?min_position=%d&wait_ms=5000" % (pos + 1), tok["a"])
        res["end"] = time.time()
        res["t"] = res["end"] - t0
        res["v"] = c.violations
    th = threading.Thread(target=waiter)
    th.start()
    wait_waiting(api, 1)
    # the waiter waits up to 5 s; an answer well before that shows it
    # holds no thread others need (the margin is for a busy box)
    hz = time.time()
    T.ok(api.get("/healthz").status == 200 and time.time() - hz < 2.5,
         "a waiting request does not hold up others")
    t_apply = time.time()
    newpos = h.apply([upd])
    th.join(10)
    r = res["r"]
    j = r.json()
    T.ok(r.status == 200 and j["behind"] is False and j["position"] >= pos + 1 and
         j["order"]["email"] == "changed@example.com" and res["end"] >= t_apply and res["t"] < 4,
         "min_position: answered once applied (%.2f s), with the change" % res["t"])
    api.violations += res["v"]
    T.ok(newpos == pos + 1, "the harness applied one entry")
    t0 = time.time()
    r = api.get(path + "?min_position=%d&wait_ms=300" % (pos + 1000), tok["a"])
    el = time.time() - t0
    T.ok(r.status == 200 and r.json()["behind"] is True and r.headers.get("waybill-behind") == "true"
         and 0.25 < el < 1.5, "min_position not reached: after wait_ms, behind=true (%.2f s)" % el)
    t0 = time.time()
    r = api.get(path + "?min_position=%d&wait_ms=60000" % (pos + 1000), tok["a"])
    el = time.time() - t0
    T.ok(r.json()["behind"] is True and el < 3, "wait_ms capped by projector.http.wait.max.ms (%.2f s)" % el)
    r = api.get(path + "?min_position=%d" % (pos + 1000), tok["a"])
    T.ok(r.json()["behind"] is True, "min_position without wait_ms: no wait, behind=true")
    r = api.get(path + "?min_position=%d&wait_ms=1000" % pos, tok["a"])
    T.ok(r.json()["behind"] is False, "min_position already reached: behind=false")
    # many waiters at once
    outs = []

    def many(i):
        c = W.Api(h.port, openapi=api.openapi)
        outs.append(c.get(path + "?min_position=%d&wait_ms=5000" % (pos + 2), tok["a"]).json())
    ths = [threading.Thread(target=many, args=(i,)) for i in range(40)]
    for t_ in ths:
        t_.start()
    waiting = wait_waiting(api, 40)
    upd2 = dict(upd, event_id="test:upd:2", source_time=T0 + 10 ** 7 + 1,
                payload=dict(upd["payload"], email="twice@example.com"))
    h.apply([upd2])
    for t_ in ths:
        t_.join(10)
    T.ok(waiting >= 35 and len(outs) == 40 and all(not x["behind"] and x["order"]["email"] == "twice@example.com" for x in outs),
         "40 concurrent waiters (%d suspended at once) all answered once applied" % waiting)

    # ---- the answer cache never serves a changed order ------------------------
    stale = 0
    for i in range(20):
        api.get(path, tok["a"])  # warm
        e = dict(upd, event_id="test:cache:%d" % i, source_time=T0 + 2 * 10 ** 7 + i,
                 payload=dict(upd["payload"], email="c%d@example.com" % i))
        h.apply([e])
        if api.get(path, tok["a"]).json()["order"]["email"] != "c%d@example.com" % i:
            stale += 1
    T.ok(stale == 0, "cached answers: a change is visible on the very next request (%d stale)" % stale)

    # ---- readiness -----------------------------------------------------------
    T.wait_for(lambda: api.get("/readyz", check=False).status == 200, 10, 0.1)
    r = api.get("/readyz")
    T.ok(r.status == 200 and r.json()["ready"] is True, "readyz 200 when caught up")
    if h.can_set_lag:
        readiness_lag_checks(h, api, path, tok)
    T.ok(api.get("/healthz").json() == {"status": "ok"}, "healthz")

    # ---- tokens file reload ------------------------------------------------------
    new_tok, new_line = make_token(a, "read")
    T.ok(api.get(path, new_tok).status == 401, "a new token is unknown before the reload")
    with open(tokens_file, "a") as f:
        f.write(new_line + "\n")
    T.ok(T.wait_for(lambda: api.get(path, new_tok, check=False).status == 200, 5, 0.2),
         "the tokens file is re-read when it changes")
    with open(tokens_file) as f:
        good_text = f.read()
    with open(tokens_file, "a") as f:
        f.write("garbage line\n")
    time.sleep(2.5)
    m = W.parse_metrics(api.get("/metrics").body.decode())
    T.ok(api.get(path, new_tok).status == 200 and
         m["waybill_http_token_reload_failures_total"]["samples"][0][2] >= 1,
         "a broken tokens file keeps the previous tokens (and is counted)")
    with open(tokens_file, "w") as f:
        f.write(good_text)

    # ---- metrics -------------------------------------------------------------------
    r = api.get("/metrics")
    T.ok(r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
         "metrics content type is text/plain; version=0.0.4")
    try:
        m = W.parse_metrics(r.body.decode())
        T.ok(True, "metrics text parses strictly (%d families)" % len(m))
    except ValueError as e:
        m = {}
        T.ok(False, "metrics text parses strictly: %s" % e)
    if m:
        req = {(s[1]["route"], s[1]["status"]): s[2] for s in m["waybill_http_requests_total"]["samples"]}
        T.ok(req.get(("/v1/orders/{id}", "200"), 0) > 50 and req.get(("/v1/orders/{id}", "404"), 0) > 10
             and req.get(("/v1/orders/{id}", "401"), 0) > 1 and req.get(("unknown", "404"), 0) > 1,
             "requests counted by route and status")
        hist = [s for s in m["waybill_http_request_duration_seconds"]["samples"]
                if s[0].endswith("_count") and s[1]["route"] == "/v1/orders/{id}" and s[1]["status"] == "200"]
        T.ok(hist and hist[0][2] == req[("/v1/orders/{id}", "200")], "latency histogram count matches")
        T.ok(m["waybill_projector_entries_applied_total"]["samples"][0][2] >= len(examples),
             "apply counter")
        lag = {s[1]["partition"]: s[2] for s in m["waybill_projector_lag_entries"]["samples"]}
        nparts = PIPELINE_PARTITIONS if isinstance(h, Pipeline) else 4
        T.ok(set(lag) == {str(p) for p in range(nparts)}, "lag per partition")
        T.ok(m["waybill_projector_apply_rate"]["type"] == "gauge", "apply rate gauge")

    T.ok(not api.violations, "%d answers conform to GET /v1/openapi.json (%d violations)" %
         (api.count, len(api.violations)))
    for v in api.violations[:15]:
        T.diag(v)


def readiness_lag_checks(h, api, path, tok):
    h.send("lag 1 5000")
    r = api.get("/readyz")
    T.ok(r.status == 503 and r.json()["ready"] is False and "reason" in r.json(),
         "readyz 503 when a partition lags more than projector.ready.max.lag")
    r = api.get(path, tok["a"])
    fr = r.json()["freshness"]
    T.ok(fr["caught_up"] is False and fr["projection_lag_ms"] > 0, "freshness shows the lag")
    h.send("lag 1 3")
    T.ok(api.get("/readyz").status == 200, "readyz 200 again within the allowed lag")
    h.send("lag 1 0")


def staleness_checks(tmp, tokens_file, tok, placed):
    """Design 10: an answer is never staler than the position it states.
    One ledger partition, so position = seq: while updates are applied one
    by one, every answer must show at least the update of the highest seq
    at or below its position."""
    path0 = os.path.join(tmp, "single.jsonl")
    with open(path0, "w") as f:
        f.write(json.dumps(placed) + "\n")
    h = Harness(tmp, "single", path0, tokens_file,
                ["--partitions", "1", "--projector.http.rate.limit=0"])
    try:
        base = h.position
        api = W.Api(h.port)
        path = "/v1/orders/%s" % q(placed["order_id"])
        stop = threading.Event()
        seen = {"n": 0, "bad": 0, "first": None}

        def reader():
            c = W.Api(h.port, openapi=api.openapi)
            while not stop.is_set():
                j = c.get(path, tok["a"], check=False).json()
                email = j["order"]["email"] or ""
                k = int(email[1:email.index("@")]) if email.startswith("s") else -1
                need = j["position"] - base - 1  # index of the update at seq == position
                seen["n"] += 1
                if k < need:
                    seen["bad"] += 1
                    seen["first"] = seen["first"] or (j["position"], email)
        th = threading.Thread(target=reader)
        th.start()
        for i in range(150):
            h.apply([dict(placed, event_id="stale:%d" % i, type="OrderUpdated",
                          source_time=placed["source_time"] + 1000 + i,
                          payload={"email": "s%d@example.com" % i, "phone": None,
                                   "note": None, "lines": None, "totals": None})])
        stop.set()
        th.join(10)
        # how many reads fit in the 150 applies depends on the box's load
        # (89 with four copies of this test at once): a few dozen suffice
        T.ok(seen["n"] >= 20 and seen["bad"] == 0,
             "%d answers during 150 applies: none staler than its position (%d; first %s)" % (
                 seen["n"], seen["bad"], seen["first"]))
    finally:
        h.stop()


def wait_waiting(api, n, timeout=10.0):
    """Polls /metrics until n requests wait for a position (or timeout);
    returns how many waited at the last look."""
    end = time.time() + timeout
    while True:
        m = W.parse_metrics(api.get("/metrics").body.decode())
        waiting = m["waybill_http_waiting_requests"]["samples"][0][2]
        if waiting >= n or time.time() > end:
            return waiting
        time.sleep(0.05)


def rate_limit_checks(tmp, ev_path, tokens_file, tok):
    h = Harness(tmp, "limited", ev_path, tokens_file,
                ["--projector.http.rate.limit=2", "--projector.http.rate.burst=3"])
    try:
        api = W.Api(h.port)
        path = "/v1/orders/x"
        codes = [api.get(path, tok["a"]).status for _ in range(5)]
        T.ok(codes[:3] == [404] * 3 and codes[3:] == [429, 429], "burst 3 then 429 (%s)" % codes)
        r = api.get(path, tok["a"])
        ra = int(r.headers.get("retry-after", "0"))
        T.ok(r.status == 429 and r.json()["error"] == "rate_limited" and ra >= 1,
             "429 with Retry-After: %d and a JSON error" % ra)
        T.ok(api.get(path, tok["b"]).status == 404, "another token has its own bucket")
        time.sleep(ra)
        T.ok(api.get(path, tok["a"]).status == 404, "after Retry-After the token may ask again")
        T.ok(not api.violations, "rate-limited answers conform to the OpenAPI document")
        for v in api.violations[:5]:
            T.diag(v)
        # a request still waiting for min_position when the server stops
        # is answered (behind), not cut off
        got = {}

        def waiter():
            c = W.Api(h.port, openapi=api.openapi)
            try:
                r = c.get("/v1/orders/x?min_position=999999&wait_ms=8000", tok["b"])
                got["r"] = (r.status, r.json().get("behind"))
            except Exception as e:  # noqa: BLE001
                got["r"] = repr(e)
        th = threading.Thread(target=waiter)
        th.start()
        # on a busy box the waiter may take a while to connect: stop only
        # once the server holds its request
        wait_waiting(api, 1)
        t0 = time.time()
        rc = h.stop()
        th.join(10)
        T.ok(got.get("r") == (404, True) and rc == 0 and time.time() - t0 < 5,
             "stopping answers a waiting request (%s) and exits (rc %s, %.1f s)" % (
                 got.get("r"), rc, time.time() - t0))
        h = None
    finally:
        if h:
            h.stop()


if __name__ == "__main__":
    main()
