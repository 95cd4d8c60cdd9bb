#!/usr/bin/env python3
"""Writes projectors/openapi.json, the OpenAPI 3.1 document of
waybill-projector's HTTP API (served at GET /v1/openapi.json, embedded at
build time). This script is its source: edit here, run it, commit both.

usage: projectors/openapi.py [--check]   (--check: exit 1 if the JSON is stale)

The shapes follow the read models (projectors/projector_fold.c,
wb_order_present) and the HTTP layer (projectors/projector_http.c); the
tests validate every answer they get against the served document, so a
field added on either side without a line here fails them.
"""
import json
import os
import sys
from collections import OrderedDict as O

def ref(n): return {"$ref": "#/components/schemas/" + n}
def nullable(s):
    if "$ref" in s: return {"oneOf": [s, {"type": "null"}]}
    s = dict(s); t = s["type"]; s["type"] = [t, "null"] if isinstance(t, str) else t + ["null"]; return s
S = lambda **k: {"type": "string", **k}
I = lambda **k: {"type": "integer", **k}
B = lambda **k: {"type": "boolean", **k}
def obj(props, required=None, addl=False, **k):
    o = {"type": "object", "properties": props, "required": list(props) if required is None else required}
    if addl is False: o["additionalProperties"] = False
    o.update(k); return o
def arr(items, **k): return {"type": "array", "items": items, **k}
MS = I(description="Epoch milliseconds.")
NMS = nullable(MS)
NS = {"type": ["string", "null"]}

schemas = O()
schemas["Money"] = obj({"amount": I(description="Minor units (cents)."), "currency": S(description="ISO 4217.")})
schemas["Address"] = obj({k: NS for k in ["name","company","line1","line2","city","region","postal_code","country_code","phone"]})
schemas["Totals"] = obj({"subtotal": nullable(ref("Money")), "shipping": nullable(ref("Money")), "tax": nullable(ref("Money")), "discounts": nullable(ref("Money")), "total": ref("Money")}, required=["total"])
schemas["ItemQuantity"] = obj({"line_id": NS, "sku": NS, "quantity": I()}, required=["quantity"])
schemas["Line"] = obj({"line_id": NS, "sku": NS, "title": S(), "quantity": I(), "unit_price": ref("Money"),
    "fulfilled_quantity": I(description="Quantity covered by fulfillments."),
    "refunded_quantity": I(description="Quantity covered by refunds.")},
    required=["title","quantity","unit_price","fulfilled_quantity","refunded_quantity"])
schemas["Verdict"] = obj({"allowed": B(), "reason": S(description="A stable code, e.g. already_shipped, not_yet_shipped.")})
schemas["ReturnVerdict"] = obj({"allowed": B(), "reason": S(), "window_days": I(minimum=0), "window_ends_at": NMS})
shipment_statuses = ["label_printed","label_purchased","confirmed","ready_for_pickup","picked_up","in_transit","out_for_delivery","attempted_delivery","delayed","delivered","failure","returned_to_sender","other"]
schemas["Shipment"] = obj({"tracking_number": S(), "fulfillment_id": NS, "carrier": NS, "tracking_url": NS,
    "status": {"enum": shipment_statuses + [None], "description": "Latest carrier status by channel source_time (late news never moves it back)."},
    "last_event": nullable(obj({"status": NS, "carrier_time": NMS, "location": NS, "source_time": MS})),
    "estimated_delivery": NMS, "delivered_at": NMS, "updated_at": NMS})
schemas["Fulfillment"] = obj({"fulfillment_id": S(), "created_at": MS, "lines": arr(ref("ItemQuantity")), "carrier": NS, "tracking_numbers": arr(S())})
schemas["Refund"] = obj({"refund_id": S(), "amount": ref("Money"), "lines": arr(ref("ItemQuantity")), "restock": {"type": ["boolean","null"]}, "reason": NS, "issued_at": MS})
ret_props = O([("return_id", S()), ("status", {"enum": ["requested","approved","declined","received","closed", None]}),
    ("lines", arr(ref("ItemQuantity"))), ("reason", NS), ("decline_reason", NS),
    ("requested_at", NMS), ("approved_at", NMS), ("declined_at", NMS), ("received_at", NMS), ("closed_at", NMS), ("updated_at", NMS)])
schemas["Return"] = obj(dict(ret_props))
schemas["ReturnOfOrder"] = obj(dict(ret_props, order_id=S()), description="A return, with the order it belongs to.")
schemas["ActionParameters"] = obj({"reason": NS, "address": nullable(ref("Address")), "amount": nullable(ref("Money")), "lines": arr(ref("ItemQuantity")), "note": NS})
schemas["Action"] = obj({"action_id": S(), "kind": {"enum": ["cancel","change_address","refund","request_return", None]},
    "status": {"enum": ["requested","rejected","succeeded","failed", None]},
    "parameters": nullable(ref("ActionParameters")), "requester": NS, "idempotency_key": NS, "reason": NS,
    "channel_ref": NS, "attempts": {"type": ["integer","null"]}, "requested_at": NMS, "updated_at": NMS},
    required=["action_id","kind","status","parameters","requester","idempotency_key","reason","channel_ref","requested_at","updated_at"])
schemas["Snapshot"] = obj({"observed_at": MS, "channel_updated_at": NMS, "financial_status": NS, "fulfillment_status": NS, "cancelled": B(), "total": nullable(ref("Money")), "tracking_numbers": arr(S())},
    description="The latest reconciliation poll's view of the order.")
customer_statuses = ["processing","shipped","partially_shipped","ready_for_pickup","in_transit","delayed","out_for_delivery","delivered","partially_delivered","delivery_problem","cancelled","refunded","return_in_progress"]
schemas["Order"] = obj(O([
    ("order_id", S(description="<channel>:<channel order id>")), ("merchant", S()), ("channel", S()), ("channel_order_id", NS),
    ("name", nullable(S(description="e.g. #1001"))), ("email", NS), ("phone", NS), ("note", NS), ("currency", NS), ("placed_at", NMS),
    ("lines", arr(ref("Line"))), ("totals", nullable(ref("Totals"))), ("shipping_address", nullable(ref("Address"))),
    ("snapshot", nullable(ref("Snapshot"))),
    ("order", obj({"status": {"enum": ["open","cancelled", None]}, "cancel_reason": NS, "cancel_note": NS, "cancelled_at": NMS, "updated_at": NMS})),
    ("payment", obj({"status": {"enum": ["pending","authorized","paid","partially_paid","partially_refunded","refunded","voided", None]}, "amount_paid": nullable(ref("Money")), "updated_at": NMS})),
    ("fulfillment", obj({"status": {"enum": ["unfulfilled","partially_fulfilled","fulfilled"]}, "fulfillments": arr(ref("Fulfillment")), "updated_at": NMS})),
    ("shipments", arr(ref("Shipment"))), ("refunds", arr(ref("Refund"))),
    ("refunded", arr(ref("Money"), description="Refunded amounts, one per currency.")),
    ("returns", arr(ref("Return"))), ("actions", arr(ref("Action"))),
    ("pending_actions", arr(ref("Action"), description="Actions requested and not yet succeeded, failed or rejected.")),
    ("customer_status", {"enum": customer_statuses, "description": "One derived status for plain answers."}),
    ("eligibility", obj({"can_cancel": ref("Verdict"), "can_change_address": ref("Verdict"), "can_return": ref("ReturnVerdict")})),
    ("delivered_at", NMS),
    ("version", I(minimum=1, description="The order's ledger version this view reflects.")),
    ("partition", I(minimum=0)), ("seq", I(minimum=1)), ("recorded_at", MS), ("updated_at", MS),
]), description="The order view, presented at the time of the answer.")
schemas["TimelineEntry"] = obj(O([("version", I(minimum=1)), ("seq", I(minimum=1)), ("partition", I(minimum=0)),
    ("type", S()), ("event_id", S()), ("source", S()), ("source_time", MS), ("ingest_time", MS), ("recorded_at", MS),
    ("correlation_id", S()), ("applied", {"const": False, "description": "Present (false) when the event was late: it is in the timeline but moved no facet."}),
    ("facts", {"type": "object", "description": "The event's key payload facts."})]),
    required=["version","seq","partition","type","event_id","source","source_time","ingest_time","recorded_at","facts"])
schemas["Freshness"] = obj({
    "latest_source_time": nullable(I(description="Latest channel source_time applied (epoch ms).")),
    "last_recorded_at": nullable(I(description="When the ledger recorded the last applied entry (epoch ms).")),
    "projection_lag_ms": nullable(I(minimum=0, description="0 when every ledger partition is applied to its end as last measured; otherwise ms since the ledger recorded the last applied entry; null before anything was applied.")),
    "caught_up": B(description="Every ledger partition was applied to its end as last measured.")})
env = O([("position", I(minimum=0, description="Sum over ledger partitions of the last applied seq: the answer reflects at least this much of the ledger.")),
    ("freshness", ref("Freshness")),
    ("min_position", I(minimum=0, description="Echo of ?min_position.")),
    ("behind", B(description="Present with min_position: true when the answer's position is still below it (wait_ms ran out)."))])
envreq = ["position", "freshness"]
def answer(key, schema, desc):
    p = O(env); p[key] = schema
    return obj(p, required=envreq + [key], description=desc)
schemas["OrderAnswer"] = answer("order", ref("Order"), "GET /v1/orders/{id}")
p = O(env); p["orders"] = arr(ref("Order")); p["has_more"] = B(description="More orders match than limit.")
schemas["OrdersAnswer"] = obj(p, required=envreq + ["orders", "has_more"], description="GET /v1/orders")
schemas["TimelineAnswer"] = answer("timeline", arr(ref("TimelineEntry")), "Every event of the order in version order.")
schemas["ReturnsAnswer"] = answer("returns", arr(ref("ReturnOfOrder")), "The order's returns.")
schemas["ReturnAnswer"] = answer("return", ref("ReturnOfOrder"), "One return.")
error_codes = ["not_found","bad_request","bad_id","bad_parameter","unknown_parameter","uri_too_long","unauthorized","forbidden","rate_limited","method_not_allowed","bad_json","body_too_large","not_implemented","internal"]
pe = O([("error", {"enum": error_codes}), ("message", S())]); pe.update(env)
schemas["Error"] = obj(pe, required=["error","message"],
    description="Every error. Errors to authorized /v1 data requests (400, 404, 413, 500, 501) also carry position and freshness, as every data answer does; 401, 403 and 429 do not. A missing order and another merchant's order get the same answer.")
schemas["Health"] = obj({"status": {"const": "ok"}})
schemas["Ready"] = obj(O([("ready", B()), ("position", I(minimum=0)), ("max_lag", I(minimum=0)),
    ("partitions", arr(obj({"partition": I(minimum=0), "lag": nullable(I(minimum=0))}))), ("reason", S())]),
    required=["ready","position","max_lag","partitions"])

H = O()
H["Waybill-Position"] = {"description": "The answer's position (as in the body).", "schema": I(minimum=0)}
H["Waybill-Behind"] = {"description": "true when ?min_position was not reached within wait_ms.", "schema": {"const": "true"}}
H["Retry-After"] = {"description": "Seconds until the token may make another request.", "schema": I(minimum=0)}
H["WWW-Authenticate"] = {"description": "RFC 6750: Bearer realm=\"waybill\" (with error=\"invalid_token\" for an unknown token, error=\"insufficient_scope\" and scope for a missing scope).", "schema": S()}
H["Allow"] = {"description": "The methods the route takes.", "schema": S()}

def jr(schema, desc, headers=None):
    r = {"description": desc, "content": {"application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}}}
    if headers: r["headers"] = {h: {"$ref": "#/components/headers/" + h} for h in headers}
    return r
R = O()
R["BadRequest"] = jr("Error", "More than one Authorization header (bad_request, checked before the token; no position), bad id (not percent-encoded UTF-8, control characters, over 256 bytes), unknown, repeated or malformed query parameter, or bad JSON body.")
R["Unauthorized"] = jr("Error", "No bearer token, or not a valid one.", ["WWW-Authenticate"])
R["Forbidden"] = jr("Error", "The token lacks the scope the route needs.", ["WWW-Authenticate"])
R["NotFound"] = jr("Error", "No such order or return for this token's merchant: another merchant's id gets exactly this answer. Also unknown routes.", ["Waybill-Position"])
R["MethodNotAllowed"] = jr("Error", "The route does not take this method.", ["Allow"])
R["UriTooLong"] = jr("Error", "The query string is over 4096 bytes. (Request lines over about 60 KB are refused by the HTTP library itself, with a non-JSON 414.)")
R["TooManyRequests"] = jr("Error", "The token's rate limit (projector.http.rate.limit, rate.burst) is exhausted.", ["Retry-After"])
R["Internal"] = jr("Error", "The read models could not answer.")

P = O()
P["Id"] = {"name": "id", "in": "path", "required": True, "description": "Order id <channel>:<channel order id>, percent-encoded (shopify%3A820982911946154508); the raw form shopify:820982911946154508 is accepted too. 1 to 256 bytes of UTF-8 after decoding.", "schema": S(minLength=1, maxLength=256)}
P["ReturnId"] = dict(P["Id"], description="Return id (percent-encoded).")
P["MinPosition"] = {"name": "min_position", "in": "query", "required": False, "description": "Answer only once the projection has reached this position (from an earlier answer or ingest acknowledgement), waiting up to wait_ms. If it is not reached in time the answer is what the projection has, with behind: true and the Waybill-Behind header.", "schema": I(minimum=0)}
P["WaitMs"] = {"name": "wait_ms", "in": "query", "required": False, "description": "How long to wait for min_position (needs min_position); capped at projector.http.wait.max.ms (default 10000). 0 or absent: no wait.", "schema": I(minimum=0, maximum=3600000)}
def look(n, d): return {"name": n, "in": "query", "required": False, "description": d + " Give exactly one of email, name, tracking, channel_order_id.", "schema": S(minLength=1, maxLength=256)}
P["Email"] = look("email", "Customer email (trimmed, case-insensitive).")
P["Name"] = look("name", "Order name, e.g. #1001 (percent-encode # as %23).")
P["Tracking"] = look("tracking", "Tracking number.")
P["ChannelOrderId"] = look("channel_order_id", "The channel's own order id, e.g. 820982911946154508.")
P["Limit"] = {"name": "limit", "in": "query", "required": False, "description": "Most orders returned (default 20).", "schema": I(minimum=1, maximum=100)}
def pref(n): return {"$ref": "#/components/parameters/" + n}
def rref(n): return {"$ref": "#/components/responses/" + n}
data_errors = {"400": rref("BadRequest"), "401": rref("Unauthorized"), "403": rref("Forbidden"), "404": rref("NotFound"), "405": rref("MethodNotAllowed"), "414": rref("UriTooLong"), "429": rref("TooManyRequests"), "500": rref("Internal")}
def data_get(op, summary, desc, params, schema):
    resp = {"200": jr(schema, summary, ["Waybill-Position", "Waybill-Behind"])}
    resp.update(data_errors)
    return {"get": {"operationId": op, "summary": summary, "description": desc, "parameters": params + [pref("MinPosition"), pref("WaitMs")], "responses": resp}}

paths = O()
paths["/v1/orders/{id}"] = data_get("getOrder", "One order's view", "Identity, customer, lines, totals, address, facet statuses, shipments with tracking, refunds, returns, pending actions, the derived customer_status and eligibility (can_cancel, can_change_address, can_return with the window's end), each with a reason.", [pref("Id")], "OrderAnswer")
paths["/v1/orders"] = data_get("findOrders", "Find orders", "The orders of the token's merchant matching exactly one of email, name, tracking or channel_order_id.", [pref("Email"), pref("Name"), pref("Tracking"), pref("ChannelOrderId"), pref("Limit")], "OrdersAnswer")
paths["/v1/orders/{id}/timeline"] = data_get("getTimeline", "An order's timeline", "Every event of the order in version order, with time, source and seq; late events are marked applied: false.", [pref("Id")], "TimelineAnswer")
paths["/v1/orders/{id}/returns"] = data_get("getOrderReturns", "An order's returns", "The order's returns with status and lines.", [pref("Id")], "ReturnsAnswer")
paths["/v1/returns/{id}"] = data_get("getReturn", "One return", "A return by its id, with its order id.", [pref("ReturnId")], "ReturnAnswer")
act_resp = {"400": rref("BadRequest"), "401": rref("Unauthorized"), "403": rref("Forbidden"), "404": rref("NotFound"), "405": rref("MethodNotAllowed"), "413": jr("Error", "The body is over 64 KiB."), "429": rref("TooManyRequests"), "501": jr("Error", "Order actions are not available yet (the body is still checked: a JSON object).")}
paths["/v1/orders/{id}/actions/{kind}"] = {"post": {"operationId": "requestAction", "summary": "Request an order action (reserved)",
    "description": "Needs the act scope. Not available yet: after authentication and a JSON-object body check it answers 501.",
    "parameters": [pref("Id"), {"name": "kind", "in": "path", "required": True, "schema": {"enum": ["cancel", "change-address", "refund", "request-return"]}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": act_resp}}
paths["/v1/actions/{id}"] = {"get": {"operationId": "getAction", "summary": "An action's outcome (reserved)", "description": "Not available yet: answers 501 after authentication.",
    "parameters": [dict(P["Id"], description="Action id.")],
    "responses": {"401": rref("Unauthorized"), "403": rref("Forbidden"), "405": rref("MethodNotAllowed"), "429": rref("TooManyRequests"), "501": jr("Error", "Not available yet.")}}}
paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Liveness", "security": [], "responses": {"200": jr("Health", "The process serves HTTP."), "405": rref("MethodNotAllowed")}}}
paths["/readyz"] = {"get": {"operationId": "readyz", "summary": "Readiness", "description": "200 once every ledger partition lags by at most projector.ready.max.lag entries; 503 before.", "security": [],
    "responses": {"200": jr("Ready", "Ready."), "503": jr("Ready", "Not ready yet (reason says why)."), "405": rref("MethodNotAllowed")}}}
paths["/metrics"] = {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "security": [],
    "description": "Prometheus text format 0.0.4: apply counters and rate, position, applied seq and lag per partition, freshness, HTTP requests by route and status with a latency histogram, waiting requests, tokens.",
    "responses": {"200": {"description": "Metrics.", "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": S()}}}, "405": rref("MethodNotAllowed")}}}
paths["/v1/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document", "security": [],
    "responses": {"200": {"description": "The OpenAPI 3.1 document.", "content": {"application/json": {"schema": {"type": "object"}}}}, "405": rref("MethodNotAllowed")}}}

doc = O()
doc["openapi"] = "3.1.0"
doc["info"] = {"title": "Waybill projector API", "version": "1.0.0",
    "description": "Read models of Waybill's order ledger for support agents. Every /v1 data route needs Authorization: Bearer <token> with the read scope; the token is bound to one merchant, and another merchant's order or return is a 404 exactly like a missing one. Every answer to an authorized data request (its errors included; not 401, 403 or 429) carries position and freshness. Errors are JSON {error, message}. Ids in paths are percent-encoded."}
doc["jsonSchemaDialect"] = "https://json-schema.org/draft/2020-12/schema"
doc["servers"] = [{"url": "http://127.0.0.1:8080", "description": "projector.http.listen"}]
doc["security"] = [{"bearer": ["read"]}]
doc["paths"] = paths
doc["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token from `waybill token new`; projector.tokens.file holds its SHA-256, merchant and scopes (read, act)."}},
    "parameters": P, "headers": H, "responses": R, "schemas": schemas}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json")
text = json.dumps(doc, indent=1) + "\n"
if sys.argv[1:] == ["--check"]:
    with open(OUT) as f:
        if f.read() != text:
            sys.exit("%s is stale: run projectors/openapi.py" % OUT)
    print("%s is up to date" % OUT)
elif sys.argv[1:]:
    sys.exit(__doc__)
else:
    with open(OUT, "w") as f:
        f.write(text)
