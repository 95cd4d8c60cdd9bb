#!/usr/bin/env python3
"""Writes the seed corpus of the HTTP API's fuzz targets (http_request,
tokens_file) into tests/fuzz/corpus/. Re-running replaces the seed-* files
and keeps everything else (crash reproducers). Output is deterministic."""
import hashlib
import os

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def h(token):
    return hashlib.sha256(token).hexdigest().encode()


SEEDS = {
    "http_request": {  # PATH \n AUTHORIZATION \n QUERY VALUE
        "order": b"/v1/orders/shopify%3A820982911946154508\n"
                 b"Bearer wbt_5pnuxueRK0tHDcBxxGtDzkfB3gzb1JIG6cSKpQPEehQ\njon%40example.com",
        "raw-id": b"/v1/orders/shopify:820982911946154508/timeline\nbearer  abc==\n%23%31001",
        "returns": b"/v1/orders/a%2Fb/returns\nBasic Zm9vOmJhcg==\na+b%2Bc",
        "return": b"/v1/returns/945000954\nBearer\n%",
        "action": b"/v1/orders/x/actions/change-address\nBearer a b\n%zz",
        "bad-id": b"/v1/orders/a%00b\nBearer =x\n%E2%9C%93",
        "lookup": b"/v1/orders\nBearer wbt_x\nbuyer%20one%40example.com",
        "ops": b"/metrics\n\n",
        "deep": b"/v1/orders/x/timeline/more/and/more\nBearer x\t\n",
        "trailing": b"/v1/orders/\nBearer x   \n+",
        "utf8": b"/v1/orders/caf%C3%A9\nBearer x\n%C0%AF",
    },
    "tokens_file": {
        "two": b"# tokens\n" + h(b"wbt_a") + b" acme.myshopify.com read\n"
               + h(b"wbt_b") + b"\tother read,act  # comment\r\n",
        "act": h(b"wbt_c") + b" acme act\n\n\n",
        "dup": h(b"wbt_a") + b" a read\n" + h(b"wbt_a") + b" b read\n",
        "raw-token": b"wbt_5pnuxueRK0tHDcBxxGtDzkfB3gzb1JIG6cSKpQPEehQ acme read\n",
        "bad-scope": h(b"x") + b" acme write\n",
        "short": b"abc acme read\n",
        "empty": b"",
    },
}

for target, seeds in SEEDS.items():
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
