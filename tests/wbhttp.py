"""Helpers for tests of waybill-projector's HTTP API.

- venv(): re-runs the calling script inside the repo's git-ignored .venv/
  with the pinned OpenAPI validators installed (exit 77 when PyPI cannot
  be reached), the way tests/compat/test_fastavro.py does for fastavro.
- Api: a keep-alive HTTP/1.1 client; every answer is checked against the
  server's own GET /v1/openapi.json (status documented for the operation,
  content type, JSON body valid against the response schema, documented
  headers present) and problems are collected in Api.violations.
- parse_metrics(): a strict parser of the Prometheus text format 0.0.4.
"""
import http.client
import json
import math
import os
import re
import socket
import subprocess
import sys
import urllib.parse

PINS = ["openapi-spec-validator==0.7.1", "openapi-schema-validator==0.6.2",
        "jsonschema==4.26.0"]
SKIP = 77
REEXEC_MARK = "WB_HTTP_VENV"
NETWORK_MARKERS = (
    "NewConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
    "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "Connection refused",
    "ProxyError", "SSLError", "No matching distribution found",
)


def _venv_ok(vpy):
    if not os.path.exists(vpy):
        return False
    probe = ("import importlib.metadata as m, sys; "
             "sys.exit(any(m.version(p.split('==')[0]) != p.split('==')[1] "
             "for p in %r))" % (PINS,))
    return subprocess.run([vpy, "-c", probe], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def venv(root):
    """Re-executes the running script in root/.venv with PINS installed."""
    if os.environ.get(REEXEC_MARK):
        return
    import fcntl
    vdir = os.path.join(root, ".venv")
    vpy = os.path.join(vdir, "bin", "python")
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, ".wb-install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _venv_ok(vpy):
            if not os.path.exists(vpy):
                r = subprocess.run([sys.executable, "-m", "venv", vdir],
                                   capture_output=True, text=True)
                if r.returncode:
                    sys.exit("cannot create %s: %s" % (vdir, r.stderr.strip()))
            r = subprocess.run([vpy, "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", "--timeout", "30",
                                "--retries", "2"] + PINS,
                               capture_output=True, text=True)
            out = r.stdout + r.stderr
            if r.returncode:
                if any(m in out for m in NETWORK_MARKERS):
                    reason = "pip cannot reach the package index for %s" % " ".join(PINS)
                    print("1..0 # SKIP " + reason, flush=True)
                    sys.exit(SKIP)
                sys.exit("pip install %s failed:\n%s" % (" ".join(PINS), out))
    sys.stdout.flush()
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    os.execve(vpy, [vpy, os.path.abspath(sys.argv[0])] + sys.argv[1:], env)


# ---- OpenAPI -----------------------------------------------------------------

class OpenApi:
    def __init__(self, doc):
        from openapi_schema_validator import OAS31Validator
        self.doc = doc
        self.Validator = OAS31Validator
        self.routes = []
        for tmpl, item in doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
            self.routes.append((re.compile(rx), tmpl, item))

    def deref(self, obj):
        while "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def operation(self, path, method):
        for rx, tmpl, item in self.routes:
            if rx.match(path):
                return tmpl, item.get(method.lower() if method != "HEAD" else "get")
        return None, None

    def check(self, method, path, status, headers, body):
        """Problems (strings) with one answer, [] when it conforms."""
        probs = []
        tmpl, op = self.operation(path, method)
        if tmpl is None or (op is None and status == 404):
            # unknown route (or an action kind that does not exist): not
            # described, but a JSON error all the same
            resp = {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        elif op is None:
            resp = self.deref({"$ref": "#/components/responses/MethodNotAllowed"})
        else:
            resp = op["responses"].get(str(status))
            if resp is None:
                return ["%s %s: status %d is not documented for %s" % (method, path, status, tmpl)]
            resp = self.deref(resp)
        ctype = headers.get("content-type", "")
        content = resp.get("content", {})
        if not content:
            return probs
        if ctype not in content:
            probs.append("%s %s: content type %r not documented (%s)" % (method, path, ctype, list(content)))
            return probs
        for h in resp.get("headers", {}):
            hdef = self.deref(resp["headers"][h])
            if h.lower() not in headers and h not in ("Waybill-Behind",):
                probs.append("%s %s %d: header %s missing" % (method, path, status, h))
            elif h.lower() in headers and "schema" in hdef:
                v = headers[h.lower()]
                sch = hdef["schema"]
                val = int(v) if sch.get("type") == "integer" and re.fullmatch(r"\d+", v) else v
                errs = list(self.Validator(dict(sch, components=self.doc["components"])).iter_errors(val))
                if errs:
                    probs.append("%s %s: header %s=%r: %s" % (method, path, h, v, errs[0].message))
        if method == "HEAD":
            return probs
        schema = content[ctype]["schema"]
        if ctype.startswith("application/json"):
            try:
                j = json.loads(body)
            except ValueError as e:
                return probs + ["%s %s: body is not JSON: %s" % (method, path, e)]
            v = self.Validator(dict(schema, components=self.doc["components"]))
            for e in list(v.iter_errors(j))[:3]:
                probs.append("%s %s %d: %s at %s" % (method, path, status, e.message[:300],
                                                      "/".join(map(str, e.absolute_path))))
        return probs


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)


class Api:
    """Keep-alive client; checks every answer against the OpenAPI document."""

    def __init__(self, port, host="127.0.0.1", openapi=None):
        """openapi: an OpenApi to share (None: fetch the server's)."""
        self.host, self.port = host, port
        self.conn = None
        self.violations = []
        self.count = 0
        self.openapi = openapi
        if openapi is None:
            self.openapi = OpenApi(self.get("/v1/openapi.json").json())

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return self.conn

    def request(self, method, path, token=None, headers=None, body=None, check=True):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        for attempt in range(2):
            c = self._conn()
            try:
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self.conn = None
                if attempt:
                    raise
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("connection", "").lower() == "close":
            c.close()
            self.conn = None
        resp = Response(r.status, hdrs, data)
        self.count += 1
        if check and self.openapi:
            p = urllib.parse.urlsplit(path).path
            self.violations += self.openapi.check(method, p, r.status, hdrs, data)
        return resp

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token=token, **kw)


def raw_request(port, data, timeout=10):
    """Sends raw bytes; returns (status, headers, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    except socket.timeout:
        pass
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


# ---- Prometheus text format 0.0.4 -------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
_SAMPLE = re.compile(r"^(?P<name>%s)(?P<labels>\{.*\})? (?P<value>\S+)(?: -?\d+)?$" % _NAME)
_LABELS = re.compile(r"^\{(?:%s(?:,%s)*,?)?\}$" % (_LABEL, _LABEL))


def _unescape(v):
    return re.sub(r'\\(\\|"|n)', lambda m: {"\\": "\\", '"': '"', "n": "\n"}[m.group(1)], v)


def _value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    return float(s)  # raises on garbage


def parse_metrics(text):
    """{family: {"type", "help", "samples": [(name, {labels}, value)]}};
    raises ValueError naming the first violation of the format."""
    if not text.endswith("\n"):
        raise ValueError("the text does not end in a newline")
    fams = {}
    order = []
    cur = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.fullmatch(_NAME, parts[2]):
                raise ValueError("line %d: malformed %s" % (n, line))
            name = parts[2]
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            key = "help" if parts[1] == "HELP" else "type"
            if f[key] is not None:
                raise ValueError("line %d: second %s for %s" % (n, parts[1], name))
            if f["samples"]:
                raise ValueError("line %d: %s for %s after its samples" % (n, parts[1], name))
            if key == "type" and parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ValueError("line %d: bad type %s" % (n, parts[3]))
            if name in order and cur != name:
                raise ValueError("line %d: %s reopened (samples must be grouped)" % (n, name))
            if name not in order:
                order.append(name)
            f[key] = parts[3]
            cur = name
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("line %d: not a sample: %r" % (n, line))
        sname = m.group("name")
        labels = {}
        if m.group("labels"):
            if not _LABELS.match(m.group("labels")):
                raise ValueError("line %d: malformed labels: %r" % (n, line))
            for lm in re.finditer(_LABEL, m.group("labels")):
                if lm.group(1) in labels:
                    raise ValueError("line %d: label %s twice" % (n, lm.group(1)))
                labels[lm.group(1)] = _unescape(lm.group(2))
        try:
            value = _value(m.group("value"))
        except ValueError:
            raise ValueError("line %d: bad value: %r" % (n, line))
        fam = cur
        if fam is None:
            raise ValueError("line %d: sample before any HELP/TYPE" % n)
        t = fams[fam]["type"]
        ok_names = {fam}
        if t == "histogram":
            ok_names = {fam + "_bucket", fam + "_sum", fam + "_count"}
        elif t == "summary":
            ok_names = {fam, fam + "_sum", fam + "_count"}
        if sname not in ok_names:
            raise ValueError("line %d: sample %s outside its family (%s)" % (n, sname, fam))
        if t == "counter" and not fam.endswith("_total"):
            raise ValueError("line %d: counter %s does not end in _total" % (n, fam))
        if t == "counter" and value < 0:
            raise ValueError("line %d: negative counter" % n)
        fams[fam]["samples"].append((sname, labels, value))
    for name, f in fams.items():
        if f["type"] is None or f["help"] is None:
            raise ValueError("%s lacks HELP or TYPE" % name)
        if f["type"] == "histogram":
            _check_histogram(name, f["samples"])
    return fams


def _check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            if "le" not in labels:
                raise ValueError("%s bucket without le" % name)
            s["buckets"].append((_value(labels["le"]), value))
        elif sname.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    for key, s in series.items():
        b = s["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ValueError("%s%s: no +Inf bucket last" % (name, key))
        if [x for x, _ in b] != sorted(x for x, _ in b):
            raise ValueError("%s%s: le not increasing" % (name, key))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError("%s%s: buckets not cumulative" % (name, key))
        if s["count"] is None or s["sum"] is None:
            raise ValueError("%s%s: _sum or _count missing" % (name, key))
        if s["count"] != b[-1][1]:
            raise ValueError("%s%s: _count %s != +Inf bucket %s" % (name, key, s["count"], b[-1][1]))
