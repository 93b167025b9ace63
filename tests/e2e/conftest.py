"""End-to-end test harness for conferenced.

Starts the real binary ($CONFERENCED_BIN) on 127.0.0.1 with a temporary data dir and drives it with
plain HTTP (raw sockets + http.client's response parser, so malformed requests can be sent too),
a local webhook receiver (http.server in a thread) and websocket-client.

Every process started here is stopped by PID (SIGTERM, bounded wait, SIGKILL); every wait is bounded.
"""

import base64
import collections
import datetime
import http.client
import http.server
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import websocket

ADMIN_USERNAME = "admin@example.com"
ADMIN_PASSWORD = "operator-pass-0123456789"

NIL_UUID = "00000000-0000-0000-0000-000000000000"
TM_NEVER = "9999-01-01 00:00:00.000000"
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DIRECT_HASH_RE = re.compile(r"^direct\.[0-9a-f]{12}$")
LISTEN_RE = re.compile(r"conferenced listening on http://127\.0\.0\.1:(\d+)")
SIP_RE = re.compile(r"SIP on udp 127\.0\.0\.1:(\d+)")

CONFERENCE_FIELDS = {
    "id", "customer_id", "type", "status", "name", "detail", "data", "timeout", "pre_flow_id",
    "post_flow_id", "conferencecall_ids", "recording_id", "recording_ids", "transcribe_id",
    "transcribe_ids", "direct_hash", "tm_end", "tm_create", "tm_update", "tm_delete",
}
CUSTOMER_FIELDS = {"id", "name", "detail", "webhook_method", "webhook_uri", "tm_create", "tm_update",
                   "tm_delete"}
AGENT_FIELDS = {"id", "customer_id", "username", "name", "detail", "ring_method", "status", "permission",
                "tag_ids", "addresses", "tm_create", "tm_update", "tm_delete"}
ACCESSKEY_FIELDS = {"id", "customer_id", "name", "detail", "token_prefix", "tm_expire", "tm_create",
                    "tm_update", "tm_delete"}

_ALL_SERVERS = []  # every Server ever started in this run (for log dumps on failure)


# ---------------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------------

def parse_ts(s):
    assert isinstance(s, str) and TS_RE.match(s), f"bad timestamp {s!r}"
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def unique(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value or the deadline passes. Returns the value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")
        time.sleep(interval)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body
        self._json = None
        self._json_done = False

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        if not self._json_done:
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except Exception as e:  # noqa: BLE001
                raise AssertionError(f"response is not JSON ({e}): {self!r}") from None
            self._json_done = True
        return self._json

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def __repr__(self):
        t = self.text
        if len(t) > 600:
            t = t[:600] + "..."
        return f"<HTTP {self.status} {self.content_type!r} {t}>"


class _NoBody:
    pass


NOBODY = _NoBody()


def _enc(v):
    if isinstance(v, bytes):
        return v
    return str(v).encode("latin-1")


def raw_exchange(port, data, timeout=3.0, src="127.0.0.1"):
    """Sends raw bytes on a fresh connection and reads until the server closes or goes quiet."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def http_raw(port, method, target, body=NOBODY, headers=None, timeout=10.0, chunked=False,
             content_type="application/json", source=None):
    """One HTTP/1.1 request over a fresh connection (Connection: close).

    source: the client address to connect from (e.g. "127.0.0.2"); default 127.0.0.1.
    body: NOBODY, bytes, str (sent as UTF-8) or any other object (JSON-encoded).
    headers: list of (name, value) pairs; values may be bytes. target may be bytes.
    Stops sending the body as soon as the server answers early (e.g. 413), then reads the answer.
    """
    if body is NOBODY:
        data = None
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    hdrs = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    if data is not None:
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        if chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append(("Content-Length", str(len(data))))
    hdrs.extend(headers or [])
    head = _enc(method) + b" " + _enc(target) + b" HTTP/1.1\r\n"
    for k, v in hdrs:
        head += _enc(k) + b": " + _enc(v) + b"\r\n"
    head += b"\r\n"

    if data is not None and chunked:
        out = b""
        for i in range(0, len(data), 65536):
            piece = data[i:i + 65536]
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        data = out + b"0\r\n\r\n"

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    try:
        sock.settimeout(timeout)
        try:
            sock.sendall(head)
            if data:
                view = memoryview(data)
                off = 0
                deadline = time.monotonic() + timeout
                while off < len(data):
                    r, w, _ = select.select([sock], [sock], [], max(0.0, deadline - time.monotonic()))
                    if r:  # the server answered (or closed) before reading the whole body
                        break
                    if not w:
                        raise TimeoutError("timed out sending request body")
                    off += sock.send(view[off:off + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock, method=method if isinstance(method, str) else None)
        resp.begin()
        payload = resp.read()
        hmap = {k.lower(): v for k, v in resp.getheaders()}
        return Resp(resp.status, hmap, payload)
    finally:
        sock.close()


def build_target(path, query=None):
    if not query:
        return path
    q = urllib.parse.urlencode(query)
    return path + ("&" if "?" in path else "?") + q


_DEFAULT = object()


class Api:
    """HTTP helper bound to one server and (optionally) one credential.

    mode: "bearer" (Authorization header), "token" (?token=), "accesskey" (?accesskey=), None.
    """

    def __init__(self, server, token=None, mode="bearer"):
        self.server = server
        self.token = token
        self.mode = mode if token else None

    def with_token(self, token, mode="bearer"):
        return Api(self.server, token, mode)

    def call(self, method, path, body=NOBODY, *, query=None, headers=None, token=_DEFAULT, mode=_DEFAULT,
             **kw):
        tok = self.token if token is _DEFAULT else token
        md = self.mode if mode is _DEFAULT else mode
        if md is None and mode is _DEFAULT and token is not _DEFAULT:
            md = "bearer"
        if tok is None:
            md = None
        q = dict(query or {})
        hdrs = list(headers or [])
        if md == "bearer":
            hdrs.append(("Authorization", f"Bearer {tok}"))
        elif md == "token":
            q["token"] = tok
        elif md == "accesskey":
            q["accesskey"] = tok
        return http_raw(self.server.port, method, build_target(path, q), body, hdrs, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=NOBODY, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=NOBODY, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def ok(resp):
    """Asserts a successful JSON answer and returns the parsed body."""
    assert resp.status == 200, f"expected 200, got {resp!r}"
    assert resp.content_type.split(";")[0].strip().lower() == "application/json", f"content-type: {resp!r}"
    return resp.json


def err(resp, code, status=None, reason=None):
    """Asserts an error answer in the error envelope and returns the inner error object."""
    assert resp.status == code, f"expected HTTP {code} ({status}/{reason}), got {resp!r}"
    assert resp.content_type.split(";")[0].strip().lower() == "application/json", \
        f"error content-type must be application/json: {resp!r}"
    body = resp.json
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"no error envelope: {resp!r}"
    e = body["error"]
    for k in ("status", "reason", "message", "request_id"):
        assert k in e, f"error envelope lacks {k!r}: {resp!r}"
        assert isinstance(e[k], str), f"error.{k} must be a string: {resp!r}"
    assert e["message"].strip(), f"empty error message: {resp!r}"
    assert e["request_id"], f"empty request_id: {resp!r}"
    if status is not None:
        assert e["status"] == status, f"expected status {status}: {resp!r}"
    if reason is not None:
        if isinstance(reason, (tuple, list, set)):
            assert e["reason"] in reason, f"expected reason in {reason}: {resp!r}"
        else:
            assert e["reason"] == reason, f"expected reason {reason}: {resp!r}"
    return e


def not_5xx(resp):
    assert resp.status < 500, f"bad input must never give a 5xx: {resp!r}"
    return resp


# ---------------------------------------------------------------------------------------------------
# Object checks
# ---------------------------------------------------------------------------------------------------

def check_conference(c, customer_id=None):
    assert isinstance(c, dict), c
    missing = CONFERENCE_FIELDS - set(c)
    assert not missing, f"conference lacks {sorted(missing)}: {c}"
    assert UUID_RE.match(c["id"]), c
    assert UUID_RE.match(c["customer_id"]), c
    if customer_id:
        assert c["customer_id"] == customer_id, c
    assert c["type"] in ("conference", "connect"), c
    assert c["status"] in ("starting", "progressing", "terminating", "terminated"), c
    for k in ("name", "detail"):
        assert isinstance(c[k], str), c
    assert isinstance(c["data"], dict), c
    assert isinstance(c["timeout"], int) and not isinstance(c["timeout"], bool), c
    for k in ("pre_flow_id", "post_flow_id", "recording_id", "transcribe_id"):
        assert isinstance(c[k], str) and UUID_RE.match(c[k]), (k, c)
    for k in ("conferencecall_ids", "recording_ids", "transcribe_ids"):
        assert isinstance(c[k], list), (k, c)
    assert isinstance(c["direct_hash"], str), c
    for k in ("tm_create", "tm_update", "tm_delete"):
        parse_ts(c[k])
    if c["tm_end"] is not None:
        parse_ts(c["tm_end"])
    assert c["tm_update"] >= c["tm_create"], c
    return c


def check_fresh_conference(c, customer_id=None):
    check_conference(c, customer_id)
    assert c["status"] == "progressing", c
    assert c["tm_end"] is None, c
    assert c["tm_delete"] == TM_NEVER, c
    assert c["tm_update"] == c["tm_create"], c
    assert c["conferencecall_ids"] == [] and c["recording_ids"] == [] and c["transcribe_ids"] == [], c
    assert c["recording_id"] == NIL_UUID and c["transcribe_id"] == NIL_UUID, c
    assert DIRECT_HASH_RE.match(c["direct_hash"]), c
    return c


def check_customer(c):
    missing = CUSTOMER_FIELDS - set(c)
    assert not missing, f"customer lacks {sorted(missing)}: {c}"
    assert UUID_RE.match(c["id"]), c
    for k in ("tm_create", "tm_update", "tm_delete"):
        parse_ts(c[k])
    assert "password" not in c and "password_hash" not in c, c
    return c


def check_agent(a):
    missing = AGENT_FIELDS - set(a)
    assert not missing, f"agent lacks {sorted(missing)}: {a}"
    assert UUID_RE.match(a["id"]) and UUID_RE.match(a["customer_id"]), a
    assert isinstance(a["permission"], int), a
    assert isinstance(a["tag_ids"], list) and isinstance(a["addresses"], list), a
    for k in ("tm_create", "tm_update", "tm_delete"):
        parse_ts(a[k])
    for k in a:
        assert "password" not in k, f"agent exposes {k}: {a}"
    return a


def check_accesskey(k):
    missing = ACCESSKEY_FIELDS - set(k)
    assert not missing, f"access key lacks {sorted(missing)}: {k}"
    assert UUID_RE.match(k["id"]) and UUID_RE.match(k["customer_id"]), k
    for f in ("tm_expire", "tm_create", "tm_update", "tm_delete"):
        parse_ts(k[f])
    return k


def list_all(api, path, page_size=100, query=None, max_pages=1000):
    """Walks a paginated list and returns every item."""
    items = []
    token = None
    for _ in range(max_pages):
        q = dict(query or {})
        q["page_size"] = page_size
        if token:
            q["page_token"] = token
        body = ok(api.get(path, query=q))
        assert set(body) >= {"result", "next_page_token"}, body
        if not body["result"]:
            assert body["next_page_token"] == "", body
            return items
        items.extend(body["result"])
        token = body["next_page_token"]
        assert token, body
    raise AssertionError("list did not end")


# ---------------------------------------------------------------------------------------------------
# Server process
# ---------------------------------------------------------------------------------------------------

def _binary():
    b = os.environ.get("CONFERENCED_BIN")
    if not b:
        here = os.path.dirname(os.path.abspath(__file__))
        b = os.path.join(here, "..", "..", "build", "conferenced")
    b = os.path.abspath(b)
    if not os.access(b, os.X_OK):
        pytest.fail(f"conferenced binary not found or not executable: {b} (set CONFERENCED_BIN)")
    return b


class Server:
    """One conferenced process on 127.0.0.1:<ephemeral> with its own data dir."""

    def __init__(self, data_dir, log_dir, name="srv", admin_password=ADMIN_PASSWORD, extra_args=(),
                 webhook_allow_private=True):
        self.bin = _binary()
        self.webhook_allow_private = webhook_allow_private  # False: start without the flag
        self.data_dir = str(data_dir)
        self.log_dir = str(log_dir)
        self.name = name
        self.admin_password = admin_password
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.starts = 0
        self.stdout_lines = []
        self.log_path = None
        self._log_file = None
        self._reader = None
        self._op_token = None
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        _ALL_SERVERS.append(self)

    # -- process control ----------------------------------------------------------------------------
    def start(self, timeout=10.0):
        assert self.proc is None, "already running"
        self.starts += 1
        self.log_path = os.path.join(self.log_dir, f"{self.name}-{self.starts}.stderr.log")
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ)
        env["CONFERENCED_ADMIN_USERNAME"] = ADMIN_USERNAME
        env["CONFERENCED_ADMIN_PASSWORD"] = self.admin_password
        args = [self.bin, "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0", "--data", self.data_dir]
        if self.webhook_allow_private:
            args.append("--webhook-allow-private")
        args += ["--log-level", "info"] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log_file, env=env, close_fds=True)
        lines = collections.deque()
        got = threading.Event()
        port_box = []
        proc = self.proc
        out = self.stdout_lines

        def reader():
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.append(line)
                lines.append(line)
                m = LISTEN_RE.search(line)
                if m and not port_box:
                    port_box.append(int(m.group(1)))
                    got.set()
            got.set()

        self._reader = threading.Thread(target=reader, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not port_box:
            if self.proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                break
            got.wait(0.05)
        if not port_box:
            rc = self.proc.poll()
            self._force_stop()
            raise AssertionError(
                f"server did not print its listening line within {timeout}s (rc={rc}); stdout={list(lines)}"
                f"\nstderr:\n{self.log_tail()}")
        self.port = port_box[0]
        # the SIP line is printed with the listening line
        self.sip_port = None
        sip_deadline = time.monotonic() + 2.0
        while self.sip_port is None and time.monotonic() < sip_deadline:
            for line in list(out):
                m = SIP_RE.search(line)
                if m:
                    self.sip_port = int(m.group(1))
            if self.sip_port is None:
                time.sleep(0.02)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self):
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.proc = None

    def _force_stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        self._reap()
        return rc

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, SIGKILL if needed. Returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            rc = None
        self._reap()
        return rc

    def kill9(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        finally:
            self._reap()

    def restart(self, timeout=10.0):
        rc = self.stop()
        assert rc == 0, f"server exit code on SIGTERM: {rc}"
        return self.start(timeout)

    def log_tail(self, n=150):
        if not self.log_path or not os.path.exists(self.log_path):
            return "(no log)"
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    def sanitizer_findings(self):
        """Lines of the server's stderr where ASan/UBSan/LSan reported something."""
        marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehavior")
        return [l for l in self.all_logs().splitlines() if any(m in l for m in marks)]

    def all_logs(self):
        out = []
        for i in range(1, self.starts + 1):
            p = os.path.join(self.log_dir, f"{self.name}-{i}.stderr.log")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
        return "\n".join(out)

    # -- API helpers --------------------------------------------------------------------------------
    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def api(self, token=None, mode="bearer"):
        return Api(self, token, mode)

    def login(self, username, password, path="/auth/login"):
        body = ok(self.api().post(path, {"username": username, "password": password}))
        assert body.get("username") == username, body
        assert isinstance(body.get("token"), str) and body["token"].count(".") == 2, body
        return body["token"]

    def operator_token(self):
        if self._op_token is None:
            self._op_token = self.login(ADMIN_USERNAME, self.admin_password)
        return self._op_token

    def operator(self):
        return self.api(self.operator_token())

    def new_customer(self, name=None, detail="e2e customer", password=None):
        """Creates a customer through the operator and logs its admin in."""
        username = f"{unique('adm')}@example.com"
        password = password or ("pw-" + uuid.uuid4().hex)
        name = name or unique("cust")
        obj = ok(self.operator().post("/v1.0/customers", {"name": name, "detail": detail,
                                                          "username": username, "password": password}))
        check_customer(obj)
        token = self.login(username, password)
        return Customer(self, obj, username, password, token)


class Customer:
    def __init__(self, server, obj, username, password, token):
        self.server = server
        self.obj = obj
        self.id = obj["id"]
        self.username = username
        self.password = password
        self.token = token
        self.api = server.api(token)

    def create_conference(self, **fields):
        body = {"type": "conference"}
        body.update(fields)
        c = ok(self.api.post("/v1.0/conferences", body))
        check_conference(c, self.id)
        return c

    def create_accesskey(self, **fields):
        body = {"name": unique("key")}
        body.update(fields)
        k = ok(self.api.post("/v1.0/accesskeys", body))
        check_accesskey(k)
        return k

    def create_agent(self, permission=None, **fields):
        username = f"{unique('agent')}@example.com"
        password = "pw-" + uuid.uuid4().hex
        body = {"username": username, "password": password, "name": unique("agent")}
        if permission is not None:
            body["permission"] = permission
        body.update(fields)
        r = self.api.post("/v1.0/agents", body)
        assert r.status == 201, f"POST /v1.0/agents: expected 201, got {r!r}"
        a = r.json
        check_agent(a)
        return a, username, password


# ---------------------------------------------------------------------------------------------------
# Webhook receiver
# ---------------------------------------------------------------------------------------------------

class WebhookReceiver:
    """Records every request; status_for(record) decides the HTTP answer (default 200)."""

    def __init__(self):
        self.records = []
        self.cond = threading.Condition()
        self.status_for = lambda rec: 200
        self.delay = 0.0
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if not n and "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                try:
                    js = json.loads(body.decode("utf-8")) if body else None
                except Exception:  # noqa: BLE001
                    js = None
                rec = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body": body, "json": js, "time": time.monotonic()}
                if recv.delay:
                    time.sleep(recv.delay)
                try:
                    code = recv.status_for(rec)
                except Exception:  # noqa: BLE001
                    code = 200
                rec["answered"] = code
                with recv.cond:
                    recv.records.append(rec)
                    recv.cond.notify_all()
                payload = b"{}"
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def events(self):
        with self.cond:
            return [r["json"] for r in self.records if isinstance(r["json"], dict)]

    def wait_for(self, pred, timeout=5.0, what="webhook event"):
        """Waits until some record satisfies pred(record); returns it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.records:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(r["method"], (r["json"] or {}).get("type") if isinstance(r["json"], dict) else None)
                           for r in self.records]
                    raise AssertionError(f"timed out waiting for {what}; received: {got}")
                self.cond.wait(left)

    def matching(self, pred):
        with self.cond:
            return [r for r in self.records if pred(r)]


def event_is(type_, conf_id, status=None):
    def pred(r):
        j = r["json"]
        if not isinstance(j, dict) or j.get("type") != type_:
            return False
        d = j.get("data") or {}
        if d.get("id") != conf_id:
            return False
        return status is None or d.get("status") == status
    return pred


# ---------------------------------------------------------------------------------------------------
# WebSocket helper
# ---------------------------------------------------------------------------------------------------

def ws_connect(server, token=None, mode="token", timeout=5.0):
    url = f"ws://127.0.0.1:{server.port}/v1.0/ws"
    header = []
    if token and mode == "token":
        url += "?token=" + urllib.parse.quote(token)
    elif token and mode == "accesskey":
        url += "?accesskey=" + urllib.parse.quote(token)
    elif token and mode == "bearer":
        header.append(f"Authorization: Bearer {token}")
    return websocket.create_connection(url, timeout=timeout, header=header)


def ws_recv_json(ws, timeout):
    """Next text frame parsed as JSON, or None when nothing arrives within timeout."""
    ws.settimeout(max(0.01, timeout))
    try:
        msg = ws.recv()
    except websocket.WebSocketTimeoutException:
        return None
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8")
    if msg == "":  # websocket-client returns "" when the server sent a close frame
        raise websocket.WebSocketConnectionClosedException("server closed the connection")
    return json.loads(msg)


def ws_collect(ws, duration):
    """All JSON frames arriving within duration seconds."""
    out = []
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        m = ws_recv_json(ws, left)
        if m is not None:
            out.append(m)


def ws_wait_for(ws, pred, timeout=5.0, what="ws frame"):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}; frames seen: {seen}")
        m = ws_recv_json(ws, left)
        if m is None:
            continue
        seen.append(m)
        if pred(m):
            return m, seen


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One shared server for the whole run; tests isolate themselves with fresh customers."""
    base = tmp_path_factory.mktemp("shared")
    srv = Server(base / "data", base / "logs", name="shared")
    srv.start()
    rc = "not stopped"
    try:
        yield srv
    finally:
        t0 = time.monotonic()
        rc = srv.stop()
        took = time.monotonic() - t0
    # reported as an error at the teardown of the last test
    assert rc == 0 and took < 8, (f"shared server: SIGTERM exit code {rc} after {took:.1f}s "
                                  f"(expected 0 within a few seconds)\n{srv.log_tail(30)}")
    assert not srv.sanitizer_findings(), srv.sanitizer_findings()[:20]


@pytest.fixture
def customer(server):
    return server.new_customer()


@pytest.fixture
def other_customer(server):
    return server.new_customer()


@pytest.fixture
def server_factory(tmp_path):
    """Starts private servers (own data dirs) and stops them all at teardown."""
    made = []

    def make(name=None, start=True, **kw):
        n = name or f"priv{len(made)}"
        srv = Server(tmp_path / n / "data", tmp_path / n / "logs", name=n, **kw)
        made.append(srv)
        if start:
            srv.start()
        return srv

    try:
        yield make
    finally:
        for s in made:
            s.stop()
    for s in made:
        assert not s.sanitizer_findings(), (s.name, s.sanitizer_findings()[:20])


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def receiver_factory():
    made = []

    def make():
        r = WebhookReceiver()
        made.append(r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when in ("call", "setup") and rep.failed:
        for s in _ALL_SERVERS:
            if s.log_path and s.proc is not None:
                rep.sections.append((f"conferenced stderr ({s.name}, tail)", s.log_tail(80)))
