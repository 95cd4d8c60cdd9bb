#!/usr/bin/env python3
"""`waybill-ingest amazon-poll --once` against a stand-in SP-API and LWA
(amazon_standin.py, serving Amazon's recorded payloads) and the real
broker, on a private topic prefix.

- a pass: the LWA token from the refresh token, getOrders with
  MarketplaceIds/LastUpdatedAfter/LastUpdatedBefore and NextToken, every
  order's getOrderItems (with its own NextToken) -> exactly the expected
  events in <prefix>events; the example order, whose yen prices have
  cents, goes to <prefix>dlq with the reason; the cursor is written;
- re-run: the cursor is used (LastUpdatedAfter = the last pass's
  LastUpdatedBefore) and nothing new is produced; without the cursor the
  same event ids come again (the ledger dedupes them);
- pace: with x-amzn-RateLimit-Limit 20/s and 40 more pages of getOrders
  and of one order's getOrderItems, each operation keeps to its token
  bucket (the documented burst, then 1/20 s apart), not slower;
- faults: 429 with Retry-After (waited), 429 with x-amzn-RateLimit-Limit
  (waited 1/rate), 500s, malformed and truncated JSON, a slow answer past
  the HTTP timeout, 401, a revoked token (403), short-lived tokens renewed
  before they expire, a getOrders that keeps failing (exit 1, cursor
  kept), LWA refusing the credentials (exit 2);
- secrets are in no output and not in --help.
"""
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wbtest as T  # noqa: E402
import amazon_standin as S  # noqa: E402

SHARED = os.environ.get("WAYBILL_FIXTURES",
                        os.path.join(T.ROOT, "tests", "fixtures", "channels"))
LOCAL = os.path.join(T.ROOT, "tests", "fixtures", "amazon")

A, B, EX = "902-1845936-5435065", "902-8745147-1934268", "902-3159896-1390916"


def sandbox_events(oid):
    o = "amazon:" + oid
    return [(o, o + ":placed", "OrderPlaced"),
            (o, o + ":priced", "OrderUpdated"),
            (o, o + ":payment:authorized", "PaymentStatusChanged"),
            (o, o + ":easyship:PendingPickUp", "ShipmentStatusChanged"),
            (o, o + ":snapshot:1569512000", "ChannelSnapshotObserved")]


EXPECTED = sandbox_events(A) + sandbox_events(B) + [
    ("amazon:" + EX, "amazon:" + EX + ":payment:pending", "PaymentStatusChanged"),
    ("amazon:" + EX, "amazon:" + EX + ":snapshot:1484941775000", "ChannelSnapshotObserved")]


def one_line(b, n=400):
    s = b.decode(errors="replace") if isinstance(b, bytes) else b
    return s[-n:].replace("\n", " | ")


class Env:
    def __init__(self, topics, tmp):
        self.topics, self.tmp = topics, tmp
        self.srv = S.StandIn(os.path.join(SHARED, "amazon"), LOCAL)
        self.seen = collections.Counter()
        self.dlq_seen = 0
        self.n = 0

    def state(self, name):
        return os.path.join(self.tmp, "state-" + name)

    def poll(self, state, *extra, creds=True, timeout=120):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("WAYBILL_"):
                env.pop(k)
        if creds:
            env["WAYBILL_AMAZON_CLIENT_SECRET"] = S.CLIENT_SECRET
            env["WAYBILL_AMAZON_REFRESH_TOKEN"] = S.REFRESH_TOKEN
        argv = [T.exe("waybill-ingest"), "amazon-poll", "--once",
                "--ingest.amazon.api.url=" + self.srv.url,
                "--ingest.amazon.lwa.url=" + self.srv.url + "/auth/o2/token",
                "--ingest.amazon.client.id=" + S.CLIENT_ID,
                "--ingest.amazon.start=1970-01-01T00:00:00Z",
                "--ingest.amazon.backoff.max.ms=300",
                "--ingest.state.dir=" + state] + T.common_flags(self.topics) + list(extra)
        return T.run(argv, env=env, timeout=timeout)

    def new_events(self):
        """Events that reached <prefix>events since the last call."""
        r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, self.topics.topic("events"), "events"])
        rows = collections.Counter()
        for line in r.stdout.decode().splitlines():
            _, key, eid, typ = line.split()
            rows[(key, eid, typ)] += 1
        new = rows - self.seen
        self.seen = rows
        return sorted(new.elements())

    def new_dlq(self):
        r = T.run([T.exe("wb-topic-dump"), T.BOOTSTRAP, self.topics.topic("dlq"), "dlq"])
        lines = r.stdout.decode().splitlines()
        new = lines[self.dlq_seen:] if len(lines) >= self.dlq_seen else lines
        self.dlq_seen = len(lines)
        return new


def check_pass(env, r, what):
    if not T.ok(r.returncode == 0, "%s: exit 0 (got %d)" % (what, r.returncode)):
        T.diag(r.stderr.decode(errors="replace")[-2000:])
    got = env.new_events()
    T.ok(got == sorted(EXPECTED), "%s: exactly the expected events" % what)
    if got != sorted(EXPECTED):
        T.diag("got %s" % got)
    return got


def secrets_absent(r, what):
    out = r.stdout + r.stderr
    T.ok(S.CLIENT_SECRET.encode() not in out and S.REFRESH_TOKEN.encode() not in out
         and b"Atza|standin" not in out, "%s: no secret or token in the output" % what)


def main():
    T.require_broker()
    with T.Topics("amazon") as topics, T.TempDir() as tmp:
        env = Env(topics, tmp)
        srv = env.srv
        try:
            run_all(env, srv)
        finally:
            srv.stop()
    T.done()


def run_all(env, srv):
    # ---- a clean pass --------------------------------------------------
    st = env.state("main")
    r = env.poll(st)
    check_pass(env, r, "first pass")
    T.ok(r.stdout.decode().strip() == "orders=3 events=12 dlq=1 acked=13 failed=0",
         "summary: " + r.stdout.decode().strip())
    secrets_absent(r, "first pass")
    dlq = env.new_dlq()
    T.ok(len(dlq) == 1 and "amazon-poll" in dlq[0] and "25.99" in dlq[0] and "JPY" in dlq[0],
         "the example order (yen with cents) is on the DLQ with the reason: %s"
         % (one_line(dlq[0]) if dlq else "nothing"))
    tok = srv.requests("token")
    T.ok(len(tok) == 1 and tok[0]["form_ok"], "one LWA token, from the refresh token grant")
    orders = srv.requests("getOrders")
    T.ok(len(orders) == 2 and orders[0]["query"].get("MarketplaceIds") == "ATVPDKIKX0DER"
         and orders[0]["query"].get("LastUpdatedAfter") == "1970-01-01T00:00:00Z"
         and "LastUpdatedBefore" in orders[0]["query"]
         and orders[1]["query"].get("NextToken") == S.PAGE2,
         "getOrders: MarketplaceIds, LastUpdatedAfter from ingest.amazon.start, "
         "LastUpdatedBefore, then NextToken")
    T.ok(all(q["token"] and q["token_valid"] for q in srv.log if q["op"] != "token"),
         "every SP-API request carried a valid x-amz-access-token")
    items = srv.requests("getOrderItems")
    T.ok(sorted((i["order"], i["query"].get("NextToken", "")) for i in items) ==
         sorted([(A, ""), (B, ""), (EX, ""), (EX, "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4")]),
         "getOrderItems per order, following its NextToken")
    cursor_file = [f for f in os.listdir(st) if f.startswith("amazon-")]
    cursor = open(os.path.join(st, cursor_file[0])).read().strip() if cursor_file else ""
    T.ok(cursor == orders[0]["query"]["LastUpdatedBefore"],
         "cursor written: %s = the pass's LastUpdatedBefore" % cursor)

    # ---- re-run with the cursor: nothing new ---------------------------
    srv.reset()
    r = env.poll(st)
    q = srv.requests("getOrders")
    T.ok(r.returncode == 0 and q and q[0]["query"].get("LastUpdatedAfter") == cursor,
         "re-run starts at the cursor (LastUpdatedAfter=%s)" % (q[0]["query"].get("LastUpdatedAfter") if q else None))
    T.ok(env.new_events() == [] and env.new_dlq() == [] and
         r.stdout.decode().strip() == "orders=0 events=0 dlq=0 acked=0 failed=0",
         "re-run with the cursor: no new events (%s)" % r.stdout.decode().strip())

    # ---- without the cursor: the same ids again -------------------------
    srv.reset()
    r = env.poll(env.state("fresh"))
    check_pass(env, r, "cursor lost, same answer: the same event ids (dedupe in the ledger)")
    env.new_dlq()

    # ---- pace: a token bucket per operation -----------------------------
    srv.reset()
    srv.rate_limits = {"getOrders": "20", "getOrderItems": "20"}
    srv.extra_pages = 40
    r = env.poll(env.state("pace"))
    srv.rate_limits = {"getOrders": "0.0167", "getOrderItems": "0.5"}
    srv.extra_pages = 0
    check_pass(env, r, "40 more pages of each operation at 20 requests/s")
    env.new_dlq()
    for op, burst, n in (("getOrders", 20, 42), ("getOrderItems", 30, 44)):
        reqs = srv.requests(op)
        t = [q["t"] for q in reqs]
        # the (i+1)th request may not come before the bucket allows it:
        # burst at once, then 20 per second (20 ms for the stand-in's own
        # timing)
        early = [i for i in range(len(t)) if t[i] - t[0] < (i + 1 - burst) / 20.0 - 0.02]
        T.ok(len(t) == n and not early,
             "%s: %d requests, none before the bucket allows (early: %s)" % (op, len(t), early[:3]))
        # once the burst is spent: 1/20 s apart, not more (the default
        # rate would be 2 s or 60 s); the first order's item pages are the
        # ones in a row
        run = [q["t"] for q in reqs if op == "getOrders" or q["order"] == A][-6:]
        gap = (run[-1] - run[0]) / 5 if len(run) == 6 else 0
        T.ok(0.9 / 20 <= gap < 0.5, "%s: the last requests %.3f s apart (1/20 s)" % (op, gap))
        if early or not 0.9 / 20 <= gap < 0.5:
            T.diag("gaps: %s" % " ".join("%.3f" % (b - a) for a, b in zip(t, t[1:])))

    # ---- faults ---------------------------------------------------------
    def fault_run(name, faults, *extra, **kw):
        srv.reset()
        srv.faults.extend(faults)
        r = env.poll(env.state(name), *extra)
        check_pass(env, r, name)
        env.new_dlq()
        return r

    # after a 429 the operation's bucket is empty: the next page waits
    # 1/rate, so the stand-in says 1/s here rather than getOrders' 1/60 s
    srv.rate_limits["getOrders"] = "1"
    r = fault_run("429 with Retry-After",
                  [S.Fault("getOrders", 1, status=429, retry_after="1")],
                  "--ingest.amazon.backoff.max.ms=5000")
    srv.rate_limits["getOrders"] = "0.0167"
    q = srv.requests("getOrders")
    gap = q[1]["t"] - q[0]["t"] if len(q) > 1 else 0
    T.ok(len(q) == 3 and gap >= 0.95, "429 Retry-After: 1 -> waited %.2f s before retrying" % gap)
    T.ok(b"amazon_retry" in r.stderr and b"429" in r.stderr, "the retry is logged")

    srv.rate_limits["getOrderItems"] = "2.0"
    fault_run("429 with x-amzn-RateLimit-Limit",
              [S.Fault("getOrderItems", 1, status=429, rate_limit="2.0")],
              "--ingest.amazon.backoff.max.ms=5000")
    srv.rate_limits["getOrderItems"] = "0.5"
    q = srv.requests("getOrderItems")
    gap = q[1]["t"] - q[0]["t"] if len(q) > 1 else 0
    T.ok(0.45 <= gap < 3, "429 with rate 2/s and no Retry-After -> waited %.2f s (1/rate)" % gap)

    fault_run("500 twice", [S.Fault("getOrderItems", 2, status=500, times=2)])
    T.ok(len(srv.requests("getOrderItems")) == 6, "500s retried (6 item requests)")
    fault_run("503 on the token endpoint", [S.Fault("token", 1, status=503)])
    fault_run("malformed JSON", [S.Fault("getOrders", 1, malformed=True)])
    fault_run("truncated JSON", [S.Fault("getOrders", 1, truncated=True)])
    fault_run("slow answer past the timeout", [S.Fault("getOrderItems", 1, delay=2.5, status=200)],
              "--ingest.amazon.http.timeout.ms=1000")
    T.ok(len(srv.requests("getOrderItems")) == 5, "the slow request was abandoned and retried")
    fault_run("401", [S.Fault("getOrders", 1, status=401)])
    T.ok(len(srv.requests("token")) == 2, "401: a new token, then the retry succeeded")
    fault_run("revoked token (403)", [S.Fault("getOrderItems", 2, revoke=True)])
    T.ok(len(srv.requests("token")) == 2, "403 with a revoked token: renewed once, then fine")

    # short-lived tokens: renewed before they run out, never used expired
    srv.reset()
    srv.token_ttl, srv.delay = 2, 0.3
    r = env.poll(env.state("expiry"))
    srv.token_ttl, srv.delay = 3600, 0.0
    check_pass(env, r, "2-second tokens")
    env.new_dlq()
    T.ok(len(srv.requests("token")) >= 2 and
         all(q["token_valid"] for q in srv.log if q["op"] != "token"),
         "tokens renewed before expiry (%d tokens, no request with an expired one)"
         % len(srv.requests("token")))

    # a getOrders that keeps failing: exit 1, nothing produced, no cursor
    srv.reset()
    srv.faults.append(S.Fault("getOrders", 1, status=500, times=100))
    st = env.state("broken")
    r = env.poll(st, "--ingest.amazon.max.attempts=3")
    T.ok(r.returncode == 1 and len(srv.requests("getOrders")) == 3,
         "getOrders failing 3 times: exit 1 after 3 attempts (%d)" % r.returncode)
    T.ok(not os.path.exists(st) or not os.listdir(st), "no cursor written by a failed pass")
    T.ok(env.new_events() == [], "nothing produced")

    # an item page that keeps failing after page 1 was produced: cursor kept
    srv.reset()
    srv.faults.append(S.Fault("getOrderItems", 3, status=503, times=100))
    st = env.state("broken-items")
    r = env.poll(st, "--ingest.amazon.max.attempts=2")
    T.ok(r.returncode == 1 and (not os.path.exists(st) or not os.listdir(st)),
         "getOrderItems failing mid-pass: exit 1, cursor not moved")
    env.new_events()
    srv.reset()
    r = env.poll(st)
    T.ok(r.returncode == 0 and
         srv.requests("getOrders")[0]["query"]["LastUpdatedAfter"] == "1970-01-01T00:00:00Z",
         "the next pass repeats the window")
    env.new_events()
    env.new_dlq()

    # continuous mode: a pass every poll.interval.ms until SIGTERM
    srv.reset()
    st = env.state("continuous")
    penv = dict(os.environ, WAYBILL_AMAZON_CLIENT_SECRET=S.CLIENT_SECRET,
                WAYBILL_AMAZON_REFRESH_TOKEN=S.REFRESH_TOKEN)
    proc = T.Proc([T.exe("waybill-ingest"), "amazon-poll",
                   "--ingest.amazon.api.url=" + srv.url,
                   "--ingest.amazon.lwa.url=" + srv.url + "/auth/o2/token",
                   "--ingest.amazon.client.id=" + S.CLIENT_ID,
                   "--ingest.amazon.start=1970-01-01T00:00:00Z",
                   "--ingest.amazon.poll.interval.ms=700",
                   "--ingest.state.dir=" + st] + T.common_flags(env.topics),
                  os.path.join(env.tmp, "continuous.log"), env=penv).start()
    T.wait_for(lambda: len(srv.requests("getOrders")) >= 4, 30)
    rc = proc.stop(30)
    q = srv.requests("getOrders")
    T.ok(rc == 0 and len(q) >= 4 and q[2]["query"].get("LastUpdatedAfter") ==
         q[0]["query"].get("LastUpdatedBefore"),
         "continuous: a second pass from the first one's cursor, exit 0 on "
         "SIGTERM (status %s, %d getOrders)" % (rc, len(q)))
    env.new_events()
    env.new_dlq()

    # credentials
    srv.reset()
    r = env.poll(env.state("creds"), creds=False)
    T.ok(r.returncode == 2 and b"WAYBILL_AMAZON_REFRESH_TOKEN" in r.stderr,
         "no credentials: exit 2 naming the variables (%s)" % one_line(r.stderr, 200))
    env2 = dict(os.environ, WAYBILL_AMAZON_CLIENT_SECRET="wrong-secret",
                WAYBILL_AMAZON_REFRESH_TOKEN=S.REFRESH_TOKEN)
    r = T.run([T.exe("waybill-ingest"), "amazon-poll", "--once",
               "--ingest.amazon.api.url=" + srv.url,
               "--ingest.amazon.lwa.url=" + srv.url + "/auth/o2/token",
               "--ingest.amazon.client.id=" + S.CLIENT_ID,
               "--ingest.state.dir=" + env.state("refused")] + T.common_flags(env.topics), env=env2)
    T.ok(r.returncode == 2 and b"invalid_grant" in r.stderr and b"wrong-secret" not in r.stderr,
         "LWA refuses the credentials: exit 2, reason shown, secret not (%s)"
         % one_line(r.stderr, 200))
    r = T.run([T.exe("waybill-ingest"), "amazon-poll", "--help"],
              env=dict(os.environ, WAYBILL_AMAZON_CLIENT_SECRET=S.CLIENT_SECRET,
                       WAYBILL_AMAZON_REFRESH_TOKEN=S.REFRESH_TOKEN))
    T.ok(r.returncode == 0 and b"ingest.amazon.refresh.token=(secret)" in r.stdout
         and S.CLIENT_SECRET.encode() not in r.stdout and S.REFRESH_TOKEN.encode() not in r.stdout,
         "--help lists the secret keys without their values")


if __name__ == "__main__":
    main()
