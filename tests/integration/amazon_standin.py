"""A stand-in for Amazon's SP-API Orders v0 and the Login with Amazon token
endpoint, serving the recorded payloads (../shared/fixtures/channels/amazon
and tests/fixtures/amazon, see tests/fixtures/amazon/SOURCES.md), with
faults to order: 401/403, 429 with or without Retry-After, 5xx, malformed
and truncated JSON, slow answers, short-lived tokens.

    srv = StandIn(fixtures_dir, local_dir)      # starts on 127.0.0.1:<free port>
    srv.faults.append(Fault("getOrders", 1, status=429, retry_after="1"))
    ... run waybill-ingest amazon-poll --ingest.amazon.api.url=srv.url ...
    srv.log                                     # every request, with its time
    srv.stop()

getOrders answers in two pages (NextToken): the static-sandbox answer
(2 Unshipped orders, 1970 dates) and then the documented example (one
Pending order, 2017). Orders whose LastUpdateDate is before the request's
LastUpdatedAfter are left out, as Amazon does, so a poller's cursor is
visible in what it gets.

Every answer carries x-amzn-RateLimit-Limit from srv.rate_limits (the
documented defaults unless a test sets others), and srv.extra_pages makes
getOrders and the first order's getOrderItems answer that many more
(empty) pages before the real ones end, for tests of the pace.
"""
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "amzn1.application-oa2-client.standin"
CLIENT_SECRET = "standin-client-secret-DO-NOT-LOG"
REFRESH_TOKEN = "Atzr|standin-refresh-token-DO-NOT-LOG"
PAGE2 = "standin-page-2"


def _iso_ms(s):
    """RFC 3339 (Z) -> epoch ms, enough for the fixtures' dates."""
    import datetime
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000)


class Fault:
    """Answer the nth request (1-based, counted per operation) of op
    ("token", "getOrders", "getOrderItems") with something else."""

    def __init__(self, op, nth, status=None, body=None, retry_after=None,
                 rate_limit=None, malformed=False, truncated=False, delay=0.0,
                 revoke=False, times=1):
        self.op, self.nth, self.status, self.body = op, nth, status, body
        self.retry_after, self.rate_limit = retry_after, rate_limit
        self.malformed, self.truncated, self.delay = malformed, truncated, delay
        self.revoke = revoke  # forget every token issued so far
        self.times = times    # how many requests from the nth on


class StandIn:
    def __init__(self, shared_dir, local_dir, token_ttl=3600, delay=0.0):
        self.token_ttl = token_ttl
        self.delay = delay  # every request, seconds
        self.faults = []
        self.log = []
        self.tokens = {}  # token -> expiry (time.time())
        self.counts = {}
        self.rate_limits = {"getOrders": "0.0167", "getOrderItems": "0.5"}
        self.extra_pages = 0
        self.lock = threading.Lock()
        load = lambda d, n: json.load(open(os.path.join(d, n)))
        sandbox = load(shared_dir, "getOrders.sandbox-TEST_CASE_200.json")
        example = load(shared_dir, "getOrders.example.json")
        sb_items = load(local_dir, "getOrderItems.sandbox-TEST_CASE_200.json")
        ex_items = load(shared_dir, "getOrderItems.example.json")
        self.pages = [sandbox["payload"]["Orders"], example["payload"]["Orders"]]
        # items by order: the sandbox answer for both sandbox orders (its
        # AmazonOrderId set to the order asked for), the documented example
        # for the example order, in two pages (it carries a NextToken)
        self.items = {}
        for o in self.pages[0]:
            p = json.loads(json.dumps(sb_items))
            p["payload"]["AmazonOrderId"] = o["AmazonOrderId"]
            self.items[(o["AmazonOrderId"], None)] = p
        ex_id = example["payload"]["Orders"][0]["AmazonOrderId"]
        self.items[(ex_id, None)] = ex_items
        self.items[(ex_id, ex_items["payload"]["NextToken"])] = {
            "payload": {"AmazonOrderId": ex_id, "OrderItems": []}}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self):
        with self.lock:
            self.faults, self.log, self.counts = [], [], {}

    def requests(self, op):
        return [r for r in self.log if r["op"] == op]

    def _fault(self, op):
        with self.lock:
            n = self.counts[op] = self.counts.get(op, 0) + 1
            for f in self.faults:
                if f.op == op and f.nth <= n < f.nth + f.times:
                    return n, f
            return n, None

    def _handler(self):
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are two writes: without this, Nagle and
            # the client's delayed ACK cost 40 ms a request
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _send(self, *a, **kw):
                try:
                    self._send_now(*a, **kw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a slow answer past its timeout)

            def _send_now(self, status, obj=None, raw=None, headers=(), truncated=False):
                body = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-amzn-RequestId", "standin-%d" % len(srv.log))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                if truncated:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _record(self, op, extra=None):
                u = urllib.parse.urlsplit(self.path)
                r = {"op": op, "t": time.time(), "path": u.path,
                     "query": dict(urllib.parse.parse_qsl(u.query)),
                     "token": self.headers.get("x-amz-access-token"),
                     "ua": self.headers.get("User-Agent")}
                if extra:
                    r.update(extra)
                with srv.lock:
                    srv.log.append(r)
                return r

            def _faulted(self, op, rec):
                n, f = srv._fault(op)
                rec["n"] = n
                if srv.delay:
                    time.sleep(srv.delay)
                if not f:
                    return False
                rec["fault"] = True
                if f.delay:
                    time.sleep(f.delay)
                if f.revoke:
                    with srv.lock:
                        srv.tokens.clear()
                    return False
                if f.malformed:
                    self._send(200, raw=b'{"payload": {"Orders": [ {"Amaz')
                    return True
                if f.truncated:
                    self._send(200, obj={"payload": {"Orders": srv.pages[0]}}, truncated=True)
                    return True
                if f.status is None:
                    return False  # a delay only
                hdrs = []
                if f.retry_after is not None:
                    hdrs.append(("Retry-After", f.retry_after))
                if f.rate_limit is not None:
                    hdrs.append(("x-amzn-RateLimit-Limit", f.rate_limit))
                body = f.body if f.body is not None else {"errors": [
                    {"code": "QuotaExceeded" if f.status == 429 else "InternalFailure",
                     "message": "stand-in fault %d" % f.status}]}
                self._send(f.status, obj=body, headers=hdrs)
                return True

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                rec = self._record("token", {"form_ok": form.get("grant_type") == "refresh_token"
                                             and form.get("client_id") == CLIENT_ID
                                             and form.get("client_secret") == CLIENT_SECRET
                                             and form.get("refresh_token") == REFRESH_TOKEN})
                if self.path != "/auth/o2/token":
                    return self._send(404, {"error": "not_found"})
                if self._faulted("token", rec):
                    return
                if not rec["form_ok"]:
                    return self._send(400, {"error": "invalid_grant",
                                            "error_description": "The request has an invalid grant parameter"})
                with srv.lock:
                    tok = "Atza|standin-%d" % (len(srv.tokens) + 1)
                    srv.tokens[tok] = time.time() + srv.token_ttl
                self._send(200, {"access_token": tok, "token_type": "bearer",
                                 "expires_in": srv.token_ttl})

            def _authorized(self, rec):
                with srv.lock:
                    exp = srv.tokens.get(rec["token"])
                rec["token_valid"] = exp is not None and exp > time.time()
                if not rec["token_valid"]:
                    self._send(403, {"errors": [{"code": "Unauthorized",
                                                 "message": "Access to requested resource is denied.",
                                                 "details": "The access token you provided has expired."}]})
                return rec["token_valid"]

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                parts = u.path.strip("/").split("/")
                if u.path == "/orders/v0/orders":
                    rec = self._record("getOrders")
                    if self._faulted("getOrders", rec) or not self._authorized(rec):
                        return
                    nt = q.get("NextToken") or ""
                    rate = [("x-amzn-RateLimit-Limit", srv.rate_limits["getOrders"])]
                    if nt.startswith("standin-empty-"):
                        k = int(nt[len("standin-empty-"):])
                        return self._send(200, {"payload": {"Orders": [], "NextToken":
                                                            "standin-empty-%d" % (k + 1)
                                                            if k < srv.extra_pages else PAGE2}},
                                          headers=rate)
                    page = 1 if nt == PAGE2 else 0
                    after = q.get("LastUpdatedAfter")
                    orders = [o for o in srv.pages[page]
                              if not after or _iso_ms(o["LastUpdateDate"]) >= _iso_ms(after)]
                    payload = {"Orders": orders}
                    if q.get("LastUpdatedBefore"):
                        payload["LastUpdatedBefore"] = q["LastUpdatedBefore"]
                    if page == 0:
                        payload["NextToken"] = "standin-empty-1" if srv.extra_pages else PAGE2
                    return self._send(200, {"payload": payload}, headers=rate)
                if len(parts) == 5 and parts[:3] == ["orders", "v0", "orders"] and parts[4] == "orderItems":
                    rec = self._record("getOrderItems", {"order": parts[3]})
                    if self._faulted("getOrderItems", rec) or not self._authorized(rec):
                        return
                    rate = [("x-amzn-RateLimit-Limit", srv.rate_limits["getOrderItems"])]
                    nt = q.get("NextToken") or ""
                    first = srv.pages[0][0]["AmazonOrderId"]
                    if nt.startswith("standin-items-") or (srv.extra_pages and parts[3] == first
                                                           and not nt):
                        k = int(nt[len("standin-items-"):]) if nt else 0
                        if k < srv.extra_pages:  # an empty page, then the real one
                            return self._send(200, {"payload": {
                                "AmazonOrderId": parts[3], "OrderItems": [],
                                "NextToken": "standin-items-%d" % (k + 1)}}, headers=rate)
                        nt = None
                    ans = srv.items.get((parts[3], nt or None))
                    if ans is None:
                        return self._send(404, {"errors": [{"code": "NotFound",
                                                            "message": "no such order"}]})
                    return self._send(200, ans, headers=rate)
                self._record("other")
                self._send(404, {"errors": [{"code": "NotFound", "message": u.path}]})

        return H
