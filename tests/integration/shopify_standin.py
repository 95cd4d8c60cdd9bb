"""Stand-ins for Shopify in the shopify-webhooks / shopify-poll tests.

- sign(): the X-Shopify-Hmac-Sha256 Shopify would send for a body;
- Receiver: starts `waybill-ingest shopify-webhooks` on a free port and
  posts webhooks to it the way Shopify does (headers, HMAC);
- GraphQLStandin: an HTTP server (threads) that answers the GraphQL Admin
  API `orders` query from tests/fixtures/shopify-graphql/orders.json, with
  Shopify's pagination (first/after, pageInfo.endCursor), the updated_at
  search filter, sortKey UPDATED_AT, cost extensions, and a script of
  failures to play before answering normally: HTTP statuses (401, 429 with
  Retry-After, 500), THROTTLED errors, truncated and malformed bodies,
  slow answers.
"""
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time
from datetime import datetime

import wbtest as T

FIXTURES = os.environ.get("WAYBILL_FIXTURES") or os.path.join(
    T.ROOT, "tests", "fixtures", "channels")
SHOPIFY = os.path.join(FIXTURES, "shopify")
GRAPHQL = os.path.join(T.ROOT, "tests", "fixtures", "shopify-graphql", "orders.json")
SHOP = "acme.myshopify.com"


def fixture(name):
    with open(os.path.join(SHOPIFY, name), "rb") as f:
        return f.read()


def sign(body, secret):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# Every sample under every topic that carries its shape (the shared
# SOURCES.md: order samples are one Order for every order topic, the
# returns sample one Return).
DELIVERIES = [
    ("orders_create.json", "orders/create"),
    ("orders_updated.json", "orders/updated"),
    ("orders_cancelled.json", "orders/cancelled"),
    ("orders_updated.json", "orders/paid"),
    ("orders_updated.json", "orders/fulfilled"),
    ("orders_updated.json", "orders/partially_fulfilled"),
    ("fulfillments_create.json", "fulfillments/create"),
    ("fulfillments_update.json", "fulfillments/update"),
    ("refunds_create.json", "refunds/create"),
    ("returns_request.json", "returns/request"),
    ("returns_request.json", "returns/approve"),
    ("returns_request.json", "returns/decline"),
    ("returns_request.json", "returns/cancel"),
    ("returns_request.json", "returns/close"),
    ("returns_request.json", "returns/reopen"),
    ("returns_request.json", "returns/process"),
]

O1 = "shopify:820982911946154500"
O2 = "shopify:4783296544821"
R = O2 + ":return:123134564567890:"
# The distinct facts those deliveries carry: (event_id or prefix, type).
EXPECTED = [
    (O1 + ":placed", "OrderPlaced"),
    (O1 + ":payment:voided", "PaymentStatusChanged"),
    (O1 + ":cancelled", "OrderCancelled"),
    (O1 + ":updated:", "OrderUpdated"),
    (O1 + ":address:", "ShippingAddressChanged"),
    (O1 + ":fulfillment:123456:d71e374fd93e8e9a", "FulfillmentCreated"),
    (O1 + ":refund:890088186047892400", "RefundIssued"),
    (R + "requested", "ReturnRequested"),
    (R + "approved", "ReturnApproved"),
    (R + "declined", "ReturnDeclined"),
    (R + "canceled", "ReturnClosed"),
    (R + "closed", "ReturnClosed"),
    (R + "reopened", "ReturnApproved"),
    (R + "received:", "ReturnReceived"),
]


def matches_expected(ids_types):
    """Checks a list of (event_id, type) holds each EXPECTED fact exactly
    once and nothing else; returns (ok, why)."""
    left = list(ids_types)
    for want, typ in EXPECTED:
        hit = [x for x in left if (x[0] == want or (want.endswith(":") and x[0].startswith(want)))
               and x[1] == typ]
        if len(hit) != 1:
            return False, "%s %s found %d times" % (want, typ, len(hit))
        left.remove(hit[0])
    if left:
        return False, "unexpected: %s" % left[:5]
    return True, "ok"


class Receiver:
    """waybill-ingest shopify-webhooks on a free port."""

    def __init__(self, topics, tmp, secrets="new-secret,old-secret", extra=(), name="wh",
                 bootstrap=None):
        self.log = os.path.join(tmp, name + ".log")
        env = dict(os.environ, WAYBILL_SHOPIFY_WEBHOOK_SECRETS=secrets)
        flags = ["--kafka.bootstrap.servers=" + (bootstrap or T.BOOTSTRAP),
                 "--topic.prefix=" + topics.prefix]
        self.proc = T.Proc([T.exe("waybill-ingest"), "shopify-webhooks",
                            "--ingest.http.listen=127.0.0.1:0"] + flags + list(extra),
                           self.log, env=env)
        self.port = None

    def start(self, timeout=30):
        self.proc.start()
        pat = re.compile(rb"event=http_listening listen=127\.0\.0\.1:(\d+)")

        def up():
            try:
                with open(self.log, "rb") as f:
                    m = pat.search(f.read())
            except OSError:
                return False
            if m:
                self.port = int(m.group(1))
            return m is not None or not self.proc.alive()
        T.wait_for(up, timeout)
        return self.port is not None

    def post(self, body, topic, secret="new-secret", hmac_header=None, webhook_id=None,
             event_id=None, shop=SHOP, headers=None, timeout=30, conn=None):
        """One delivery; returns (status, seconds). hmac_header overrides
        the computed one (None: sign with secret; False: no header)."""
        h = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
             "X-Shopify-Shop-Domain": shop, "X-Shopify-API-Version": "2026-01",
             "X-Shopify-Triggered-At": "2026-01-05T10:00:00.123456789Z"}
        if webhook_id:
            h["X-Shopify-Webhook-Id"] = webhook_id
        if event_id:
            h["X-Shopify-Event-Id"] = event_id
        if hmac_header is None:
            h["X-Shopify-Hmac-Sha256"] = sign(body, secret)
        elif hmac_header is not False:
            h["X-Shopify-Hmac-Sha256"] = hmac_header
        h.update(headers or {})
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t = time.time()
        try:
            c.request("POST", "/webhooks/shopify", body, h)
            r = c.getresponse()
            r.read()
            return r.status, time.time() - t
        finally:
            if conn is None:
                c.close()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(), dict(r.getheaders())
        finally:
            c.close()

    def metrics(self):
        status, text, _ = self.get("/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def dump(topic, mode):
    r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, topic, mode])
    if r.returncode != 0:
        T.diag("wb-topic-dump %s: %s" % (topic, r.stderr.decode()))
        return None
    return r.stdout.decode().splitlines()


def events_on(topics):
    """[(partition, key, event_id, type)] on <prefix>events."""
    lines = dump(topics.topic("events"), "events") or []
    return [tuple(line.split(" ")) for line in lines]


# ---- GraphQL Admin API stand-in ----------------------------------------------


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        sv = self.server.standin
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            req = json.loads(raw)
        except ValueError:
            req = None
        with sv.lock:
            sv.requests.append({"path": self.path, "headers": dict(self.headers),
                                "body": req, "time": time.time()})
            action = sv.script.pop(0) if sv.script else sv.always
        if action and action.get("slow"):
            time.sleep(action["slow"])
        if self.headers.get("X-Shopify-Access-Token") != sv.token or (action and action.get("status") == 401):
            return self._send(401, b'{"errors":"[API] Invalid API key or access token '
                                   b'(unrecognized login or wrong password)"}')
        if action and action.get("status"):
            hdrs = {}
            if "retry_after" in action:
                hdrs["Retry-After"] = action["retry_after"]
            return self._send(action["status"], b'{"errors":"stand-in says %d"}' % action["status"], hdrs)
        if action and action.get("throttled"):
            body = {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": sv.cost, "actualQueryCost": None,
                                        "throttleStatus": {"maximumAvailable": 1000.0,
                                                           "currentlyAvailable": action.get("available", 10),
                                                           "restoreRate": action.get("restore", 500.0)}}}}
            return self._send(200, json.dumps(body).encode())
        if not sv.path_ok(self.path):
            return self._send(404, b'{"errors":"Not Found"}')
        body = json.dumps(sv.page(req)).encode()
        if action and action.get("truncated"):
            body = body[:len(body) // 2]
        if action and action.get("malformed"):
            body = b'{"data": {"orders": {"nodes": [ this is not JSON'
        self._send(200, body)

    def _send(self, status, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that gave up on a slow answer is part of the tests
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class GraphQLStandin:
    """The orders query of the GraphQL Admin API over orders.json."""

    def __init__(self, token="shpat_test_token", version="2026-01", nodes=None):
        with open(GRAPHQL) as f:
            self.nodes = nodes if nodes is not None else json.load(f)
        self.token = token
        self.version = version
        self.script = []      # actions for the next requests, in order
        self.always = None    # action for every request once script is empty
        self.requests = []
        self.lock = threading.Lock()
        self.cost = 0
        self.srv = _Server(("127.0.0.1", 0), _Handler)
        self.srv.standin = self
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()

    def path_ok(self, path):
        return path == "/admin/api/%s/graphql.json" % self.version

    def page(self, req):
        v = (req or {}).get("variables") or {}
        first = int(v.get("first") or 50)
        q = v.get("query") or ""
        nodes = sorted(self.nodes, key=lambda n: (parse_time(n["updatedAt"]), n["id"]))
        m = re.search(r"updated_at:>='([^']+)'", q)
        if m:
            since = parse_time(m.group(1))
            nodes = [n for n in nodes if parse_time(n["updatedAt"]) >= since - 1e-6]
        start = 0
        if v.get("after"):
            start = int(base64.b64decode(v["after"]).decode().split(":")[1]) + 1
        chunk = nodes[start:start + first]
        end = start + len(chunk) - 1
        self.cost = 2 + first * 16
        return {"data": {"orders": {
            "pageInfo": {"hasNextPage": start + first < len(nodes),
                         "endCursor": base64.b64encode(("idx:%d" % end).encode()).decode()
                         if chunk else None},
            "nodes": chunk}},
            "extensions": {"cost": {"requestedQueryCost": self.cost, "actualQueryCost": 10 * len(chunk) + 2,
                                    "throttleStatus": {"maximumAvailable": 1000.0,
                                                       "currentlyAvailable": 990.0,
                                                       "restoreRate": 50.0}}}}
