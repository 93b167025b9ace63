"""The HTTP layer's edges: every answer is well-formed (one of each header, a body as long as its
Content-Length), errors the HTTP library answers itself carry the JSON envelope, Host and
Content-Length are checked, %2F is not a path separator, /v1/ is an alias of /v1.0/, requests
must arrive within the request deadline, HTTP/2 over cleartext works."""

import json
import shutil
import socket
import subprocess
import time

import pytest

from conftest import err, ok, raw_exchange as exchange


def parse_responses(raw):
    """Splits raw bytes into (status, [(name, value)], body) responses, strictly: each head must
    end with CRLFCRLF and each body must be exactly Content-Length bytes."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        assert len(lengths) <= 1, f"Content-Length sent {len(lengths)} times: {head!r}"
        n = int(lengths[0]) if lengths else len(rest)
        assert len(rest) >= n, f"body shorter than its Content-Length: {raw[:300]!r}"
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def one(raw):
    rs = parse_responses(raw)
    assert len(rs) == 1, rs
    status, headers, body = rs[0]
    names = [k.lower() for k, _ in headers]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"headers sent twice: {dup}: {headers}"
    return status, dict((k.lower(), v) for k, v in headers), body


def envelope(status, headers, body, code, reason=None):
    assert status == code, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), headers
    e = json.loads(body)["error"]
    assert set(e) == {"status", "reason", "message", "request_id"}, e
    if reason:
        assert e["reason"] == reason, e
    return e


def test_http11_without_host_is_400(server):
    st, h, b = one(exchange(server.port, b"GET /v1.0/customer HTTP/1.1\r\nConnection: close\r\n\r\n"))
    e = envelope(st, h, b, 400, "MISSING_HOST")
    assert "Host" in e["message"]
    # HTTP/1.0 needs none
    st, h, b = one(exchange(server.port, b"GET /v1.0/customer HTTP/1.0\r\n\r\n"))
    envelope(st, h, b, 401, "AUTHENTICATION_REQUIRED")


def test_conflicting_content_length_is_400(server, customer):
    tok = customer.token.encode()
    body = b'{"type":"conference"}'
    req = (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
           b"\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(body) + body)
    st, h, b = one(exchange(server.port, req))
    envelope(st, h, b, 400, "INVALID_CONTENT_LENGTH")
    # the same value twice is one Content-Length
    req = (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
           + tok + b"\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)) + body)
    st, h, b = one(exchange(server.port, req))
    assert st == 200, b


@pytest.mark.parametrize("value", [b"abc", b"-5", b"99999999999999999999", b"1, 2"])
def test_malformed_content_length_gets_the_envelope(server, value):
    req = b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n{}"
    st, h, b = one(exchange(server.port, req))
    assert st in (400, 413), (st, b)
    envelope(st, h, b, st)


def test_other_library_errors_get_the_envelope(server):
    cases = [
        (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2\r\n\r\n{}", 417),
        (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n", 413),
        (b"POST /v1.0/conferences HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ]
    for req, code in cases:
        st, h, b = one(exchange(server.port, req))
        envelope(st, h, b, code)
    # a request line the parser cannot read at all gets a plain, well-formed 400
    for garbage in [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /\x01 HTTP/1.1\r\n\r\n"]:
        st, h, b = one(exchange(server.port, garbage))
        assert st == 400


def test_slash_encoded_in_a_segment_is_not_a_separator(server, customer):
    conf = customer.create_conference(name="enc")
    err(customer.api.get("/v1.0%2Fcustomer"), 404, "NOT_FOUND", "ROUTE_NOT_FOUND")
    err(customer.api.get(f"/v1.0/conferences%2F{conf['id']}"), 404, "NOT_FOUND", "ROUTE_NOT_FOUND")
    err(customer.api.get(f"/v1.0/conferences/{conf['id'][:8]}%2F{conf['id'][9:]}"), 400,
        "INVALID_ARGUMENT", "INVALID_ID")
    # an escaped ordinary character is that character
    assert ok(customer.api.get(f"/v1.0/conferences/{conf['id'].replace('-', '%2D')}"))["id"] == conf["id"]
    err(customer.api.get("/v1.0/conferences/%zz"), 400, "INVALID_ARGUMENT", "INVALID_URI")


def test_v1_is_an_alias(server, customer):
    conf = customer.create_conference(name="alias")
    assert ok(customer.api.get(f"/v1/conferences/{conf['id']}"))["id"] == conf["id"]
    c = ok(customer.api.post("/v1/conferences", {"type": "conference", "name": "via v1"}))
    assert c["name"] == "via v1"
    assert ok(customer.api.get("/v1/customer"))["id"] == customer.id


def test_absolute_form_target(server, customer):
    req = (b"GET http://127.0.0.1/v1.0/customer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Authorization: Bearer " + customer.token.encode() + b"\r\n\r\n")
    st, h, b = one(exchange(server.port, req))
    assert st == 200 and json.loads(b)["id"] == customer.id


def test_keep_alive_and_pipelining(server, customer):
    tok = customer.token.encode()
    one_req = b"GET /v1.0/customer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\n\r\n"
    last = (b"GET /v1.0/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
            + tok + b"\r\n\r\n")
    rs = parse_responses(exchange(server.port, one_req * 3 + last))
    assert [r[0] for r in rs] == [200, 200, 200, 404]


def test_request_must_arrive_within_the_deadline(server_factory):
    srv = server_factory(extra_args=["--http-request-timeout-ms", "1500"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    t0 = time.monotonic()
    closed_at = None
    try:
        s.sendall(b"GET /v1.0/customer HTTP/1.1\r\n")
        while time.monotonic() - t0 < 6:  # a byte every 300 ms never completes the head
            try:
                s.sendall(b"X")
            except OSError:
                closed_at = time.monotonic()
                break
            s.settimeout(0.3)
            try:
                if s.recv(100) == b"":
                    closed_at = time.monotonic()
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.monotonic()
                break
    finally:
        s.close()
    assert closed_at is not None, "a connection trickling a request head was never closed"
    assert 1.2 < closed_at - t0 < 3.0, closed_at - t0
    # an idle keep-alive connection is closed after the same time
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /v1.0/customer HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 401"), got[:100]
    assert 1.2 < time.monotonic() - t0 < 3.0
    ok(srv.operator().get("/v1.0/customer"))


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is needed")
def test_http2_prior_knowledge(server, customer):
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-w", "\\n%{http_version} %{http_code}",
                          "-H", f"Authorization: Bearer {customer.token}",
                          f"http://127.0.0.1:{server.port}/v1.0/customer"],
                         capture_output=True, timeout=10, text=True)
    body, _, tail = out.stdout.rpartition("\n")
    if tail.startswith("1"):
        pytest.skip("this curl has no HTTP/2")
    assert tail == "2 200", out
    assert json.loads(body)["id"] == customer.id
