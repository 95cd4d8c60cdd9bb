#!/usr/bin/env python3
"""`waybill-ingest shopify-poll --once` against a stand-in GraphQL Admin API
(tests/integration/shopify_standin.py, serving tests/fixtures/shopify-graphql)
and the real broker, on a private topic prefix:

- pagination: 7 orders in pages of 3 are all read (first/after/endCursor),
  with the access token and the API version in the request;
- every order gives a ChannelSnapshotObserved and the events of its state
  with the webhooks' event_ids; the cursor file holds the last updated_at
  and the orders at it; a second pass asks from the cursor and emits
  nothing new; a new order updated later is picked up by the third;
- 429 with Retry-After waits at least that long; 500 and a slow answer
  (over the HTTP timeout) are retried; a THROTTLED error waits for the
  bucket; all end in a complete pass;
- 401 stops at once with exit 1 and a clear message; truncated and
  malformed JSON fail the pass (exit 1) after the retries, with the cursor
  unmoved and nothing new acknowledged past it.
"""
import copy
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import wbtest as T  # noqa: E402
import shopify_standin as S  # noqa: E402

TOKEN = "shpat_test_token"


class Poll:
    def __init__(self, topics, tmp, standin, state="state"):
        self.topics = topics
        self.state = os.path.join(tmp, state)
        self.standin = standin
        self.cursor_file = os.path.join(self.state, "shopify-poll-" + S.SHOP)

    def run(self, *extra, token=TOKEN, timeout=120):
        env = dict(os.environ, WAYBILL_SHOPIFY_ACCESS_TOKEN=token)
        t = time.time()
        r = T.run([T.exe("waybill-ingest"), "shopify-poll", "--once",
                   "--ingest.shopify.api.url=" + self.standin.url,
                   "--ingest.shopify.shop=" + S.SHOP, "--ingest.state.dir=" + self.state,
                   "--ingest.shopify.backoff.max.ms=3000",
                   "--ingest.shopify.max.attempts=4"] + T.common_flags(self.topics) + list(extra),
                  env=env, timeout=timeout)
        out = r.stdout.decode().strip()
        fields = dict(kv.split("=", 1) for kv in out.split()) if out else {}
        return r.returncode, fields, r.stderr.decode(), time.time() - t

    def cursor(self):
        try:
            with open(self.cursor_file) as f:
                return f.read().strip()
        except OSError:
            return None


def test_pages_and_cursor(tmp, topics, g):
    p = Poll(topics, tmp, g)
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    T.ok(rc == 0 and out.get("pages") == "3" and out.get("orders") == "7",
         "7 orders in 3 pages of 3: exit %d, %s" % (rc, out))
    if rc:
        T.diag(err[-1500:])
    reqs = g.requests
    T.ok(all(r["path"] == "/admin/api/2026-01/graphql.json" and
             r["headers"].get("X-Shopify-Access-Token") == TOKEN for r in reqs),
         "POST /admin/api/2026-01/graphql.json with X-Shopify-Access-Token")
    afters = [r["body"]["variables"].get("after") for r in reqs]
    T.ok(afters[0] is None and all(afters[1:]) and len(set(afters[1:])) == 2,
         "pages 2 and 3 ask after the previous endCursor")
    T.ok("sortKey: UPDATED_AT" in reqs[0]["body"]["query"] and reqs[0]["body"]["variables"]["first"] == 3,
         "sorted by UPDATED_AT, first: page size")
    evs = S.events_on(topics)
    ids = [e[2] for e in evs]
    snaps = [e for e in evs if e[3] == "ChannelSnapshotObserved"]
    T.ok(len(snaps) == 7, "one ChannelSnapshotObserved per order (%d)" % len(snaps))
    T.ok(int(out.get("acked", -1)) == len(evs) == int(out.get("events", -2)),
         "every event acknowledged (%s on the topic)" % len(evs))
    want = [S.O1 + ":placed", S.O1 + ":refund:890088186047892400", S.O1 + ":fulfillment:123456:d71e374fd93e8e9a",
            S.R + "requested", "shopify:1073459004:payment:paid"]
    T.ok(all(w in ids for w in want), "the webhooks' event_ids for the same facts (%s)" %
         [w for w in want if w not in ids])
    cur = json.loads(p.cursor() or "{}")
    T.ok(cur == {"updated_at": "2022-01-02T10:04:00.000Z", "seen": ["1073459004"]},
         "cursor file: last updated_at and the order at it (%s)" % p.cursor())
    T.ok(not [f for f in os.listdir(p.state) if f.endswith(".tmp")], "no temporary file left")

    n = len(g.requests)
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    q = g.requests[n]["body"]["variables"].get("query")
    T.ok(rc == 0 and out.get("events") == "0" and out.get("skipped") == "1",
         "second pass: nothing new (%s)" % out)
    T.ok(q == "updated_at:>='2022-01-02T10:04:00Z'", "second pass asks from the cursor's second (%s)" % q)
    T.ok(len(S.events_on(topics)) == len(evs), "no record added by the second pass")

    # an order updated later: the third pass brings exactly it
    node = copy.deepcopy(g.nodes[2])
    node["id"] = "gid://shopify/Order/1073459100"
    node["legacyResourceId"] = "1073459100"
    node["updatedAt"] = "2022-01-03T08:00:00Z"
    g.nodes.append(node)
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    new = [e for e in S.events_on(topics) if e[1] == "shopify:1073459100"]
    T.ok(rc == 0 and out.get("orders") == "2" and out.get("skipped") == "1" and len(new) == int(out["events"]),
         "third pass: only the newly updated order (%s)" % out)
    T.ok(json.loads(p.cursor())["updated_at"] == "2022-01-03T08:00:00.000Z", "cursor moved to it")
    g.nodes.pop()
    return len(S.events_on(topics))


def test_retries(tmp, topics, g):
    p = Poll(topics, tmp, g, state="state-retry")
    g.requests.clear()
    g.script = [{"status": 429, "retry_after": "1.5"}, {"status": 500}, {"slow": 3.0},
                {"throttled": True, "available": 10, "restore": 400.0}]
    rc, out, err, secs = p.run("--ingest.shopify.page.size=50", "--ingest.shopify.http.timeout.ms=1500",
                               "--ingest.shopify.max.attempts=6")
    T.ok(rc == 0 and out.get("orders") == "7", "429, 500, a slow answer and THROTTLED, then a full pass (%s)" % out)
    if rc:
        T.diag(err[-1500:])
    t = [r["time"] for r in g.requests]
    T.ok(len(t) >= 5 and t[1] - t[0] >= 1.4, "waited for Retry-After: 1.5 s (%.2f s)" % (t[1] - t[0]))
    T.ok("HTTP 429" in err and "HTTP 500" in err and "throttled" in err and "timed out" in err,
         "each retry logged with its reason")
    if "timed out" not in err:
        T.diag(err[-1500:])
    T.ok(json.loads(p.cursor() or "{}").get("updated_at") == "2022-01-02T10:04:00.000Z", "cursor set after it")


def test_failures(tmp, topics, g, total):
    p = Poll(topics, tmp, g, state="state-fail")
    g.script = []
    rc, out, err, secs = p.run(token="wrong-token")
    T.ok(rc == 1 and "HTTP 401" in err and "access token is not valid" in err and secs < 10,
         "401: exit 1 at once (%.1f s) with a clear message" % secs)
    T.ok(p.cursor() is None, "401: no cursor written")
    T.ok(len(S.events_on(topics)) == total, "401: nothing produced")

    # a first page that works, then the second is truncated every time
    g.requests.clear()
    g.script = [{}]
    g.always = {"truncated": True}
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    T.ok(rc == 1 and "truncated or malformed" in err and "gave up after 4 attempts" in err,
         "truncated JSON: exit 1 after the retries, clear message")
    cur1 = p.cursor()
    T.ok(cur1 and json.loads(cur1)["updated_at"] == "2022-01-02T10:00:00.000Z",
         "cursor only past the acknowledged first page (%s)" % cur1)
    g.always = {"malformed": True}
    g.script = []
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    T.ok(rc == 1 and "not JSON" in err, "malformed JSON: exit 1")
    T.ok(p.cursor() == cur1, "malformed JSON: cursor not moved")
    g.always = None
    rc, out, err, _ = p.run("--ingest.shopify.page.size=3")
    T.ok(rc == 0 and p.cursor() and json.loads(p.cursor())["updated_at"] == "2022-01-02T10:04:00.000Z",
         "once the API answers again the pass completes from the cursor")


def main():
    T.require_broker()
    with T.Topics("shoppoll", partitions=3) as topics, T.TempDir() as tmp, S.GraphQLStandin() as g:
        r = T.run([T.exe("waybill-ingest"), "shopify-poll", "--help"])
        out = r.stdout.decode()
        T.ok(r.returncode == 0 and "--ingest.shopify.access.token=(secret)" in out
             and "--ingest.shopify.page.size=5" in out and "ingest.http.listen" not in out,
             "--help lists the mode's options with defaults, the token hidden")
        total = test_pages_and_cursor(tmp, topics, g)
        test_retries(tmp, topics, g)
        test_failures(tmp, topics, g, len(S.events_on(topics)))
    T.done()


if __name__ == "__main__":
    main()
