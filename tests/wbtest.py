"""Helpers shared by Waybill's Python integration and e2e tests.

Binaries come from the environment meson sets (WAYBILL_BIN_DIR = the build
directory); the broker from WAYBILL_TEST_BOOTSTRAP (default
127.0.0.1:9092). Each test uses its own topic prefix and data directory,
so tests never see each other's records.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("WAYBILL_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WAYBILL_BIN_DIR", os.path.join(ROOT, "build"))
BOOTSTRAP = os.environ.get("WAYBILL_TEST_BOOTSTRAP", "127.0.0.1:9092")
SKIP = 77

_n = 0
_failed = 0


def ok(cond, what):
    global _n, _failed
    _n += 1
    # A TAP line is one line: the first line of what names the test, the
    # rest follows as diagnostics so meson never sees unknown output.
    head, _, rest = str(what).partition("\n")
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_n, head), flush=True)
    if rest:
        diag(rest)
    if not cond:
        _failed += 1
    return cond


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


def done():
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


def exe(name):
    paths = {
        "waybill-ledger": "ledger/waybill-ledger",
        "waybill": "ledger/waybill",
        "waybill-ingest": "ingestors/waybill-ingest",
        "waybill-projector": "projectors/waybill-projector",
        "wb-topic-dump": "tests/wb-topic-dump",
    }
    return os.path.join(BIN, paths[name])


def broker_up():
    host, port = BOOTSTRAP.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def require_broker():
    if not broker_up():
        print("1..0 # SKIP no Kafka broker at %s (start one with ops/kafka up)" % BOOTSTRAP)
        sys.exit(SKIP)


class Topics:
    """A private topic prefix, created on entry and deleted on exit."""

    def __init__(self, name, partitions=6):
        self.prefix = "t%d-%s-%04x." % (os.getpid(), name, random.getrandbits(16))
        self.partitions = partitions

    def _run(self, *args):
        env = dict(os.environ, WAYBILL_TOPIC_PREFIX=self.prefix,
                   WAYBILL_PARTITIONS=str(self.partitions),
                   WAYBILL_KAFKA_PORT=BOOTSTRAP.rsplit(":", 1)[1])
        subprocess.run([os.path.join(ROOT, "ops", "kafka"), "topics"] + list(args),
                       env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def __enter__(self):
        self._run()
        return self

    def __exit__(self, *exc):
        if not os.environ.get("WAYBILL_TEST_KEEP"):
            try:
                self._run("--delete")
            except Exception as e:  # cleanup must not hide the verdict
                diag("topic cleanup failed: %s" % e)

    def topic(self, name):
        return self.prefix + name


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="wbtest-")
        return self.path

    def __exit__(self, *exc):
        if not os.environ.get("WAYBILL_TEST_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


def common_flags(topics):
    return ["--kafka.bootstrap.servers=" + BOOTSTRAP, "--topic.prefix=" + topics.prefix]


class Proc:
    """A service process with its log in a file."""

    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.p = None

    def start(self):
        log = open(self.log_path, "ab")
        self.p = subprocess.Popen(self.argv, stdout=log, stderr=log, env=self.env,
                                  start_new_session=True)
        log.close()
        return self

    def kill9(self):
        if self.p and self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()

    def stop(self, timeout=60):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return -9
        return self.p.returncode if self.p else None

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


def run(argv, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, **kw)


def wait_for(pred, timeout, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
