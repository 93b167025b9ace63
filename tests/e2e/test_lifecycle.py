"""Timeouts, restarts, kill -9, SIGTERM, bootstrap, secrets in logs."""

import http.client
import json
import signal
import socket
import time

from conftest import (ADMIN_USERNAME, TM_NEVER, err, http_raw, list_all, ok, parse_ts, wait_until, ws_connect)


def _status(cust, cid):
    return ok(cust.api.get(f"/v1.0/conferences/{cid}"))


# ------------------------------------------------------------------------------------------- timeouts

def test_timeout_terminates_and_deletes(server, customer):
    c = customer.create_conference(timeout=1)
    assert c["timeout"] == 1 and c["status"] == "progressing"
    t0 = time.monotonic()
    done = wait_until(lambda: (lambda g: g if g["status"] == "terminated" else None)(_status(customer, c["id"])),
                      timeout=4, interval=0.1, what="timed-out conference terminated")
    assert time.monotonic() - t0 >= 0.5, "terminated too early"
    assert done["tm_delete"] != TM_NEVER and done["tm_end"] is not None
    dt = (parse_ts(done["tm_end"]) - parse_ts(c["tm_create"])).total_seconds()
    assert 0.8 <= dt <= 3.5, dt
    assert c["id"] not in [x["id"] for x in list_all(customer.api, "/v1.0/conferences")]
    # it followed the DELETE path: further changes are refused, a DELETE changes nothing
    err(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "late"}), 409, "FAILED_PRECONDITION",
        "STATE_INVALID")
    d = ok(customer.api.delete(f"/v1.0/conferences/{c['id']}"))
    assert d["tm_delete"] == done["tm_delete"] and d["tm_end"] == done["tm_end"] and d["status"] == "terminated"


def test_put_timeout_restarts_timer(server, customer):
    c = customer.create_conference(timeout=2)
    t0 = time.monotonic()
    time.sleep(1.0)
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"timeout": 2}))
    assert u["timeout"] == 2
    t_put = time.monotonic()
    # the original deadline (t0+2) passes without effect
    while time.monotonic() < t0 + 2.5:
        time.sleep(0.1)
    assert _status(customer, c["id"])["status"] == "progressing", "old timer still fired"
    wait_until(lambda: _status(customer, c["id"])["status"] == "terminated", timeout=3.5, interval=0.1,
               what="new timer fires")
    assert time.monotonic() - t_put >= 1.5


def test_put_timeout_zero_cancels(server, customer):
    c = customer.create_conference(timeout=1)
    ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"timeout": 0}))
    time.sleep(2.0)
    g = _status(customer, c["id"])
    assert g["status"] == "progressing" and g["tm_delete"] == TM_NEVER and g["timeout"] == 0


def test_put_other_fields_keep_timer(server, customer):
    c = customer.create_conference(timeout=1)
    ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "still timing"}))
    wait_until(lambda: _status(customer, c["id"])["status"] == "terminated", timeout=4, interval=0.1,
               what="timer kept after unrelated PUT")


# ------------------------------------------------------------------------------------------- restarts

def test_timer_survives_restart(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    c = cust.create_conference(timeout=3)
    t0 = time.monotonic()
    rc = srv.stop()
    srv.start()
    # the JWT issued before the restart still works (the secret is persisted)
    g = _status(cust, c["id"])
    if time.monotonic() - t0 < 2.5:
        assert g["status"] == "progressing"
    wait_until(lambda: _status(cust, c["id"])["status"] == "terminated", timeout=max(1.0, t0 + 7 - time.monotonic()),
               interval=0.1, what="timer after restart")
    g = _status(cust, c["id"])
    assert g["tm_delete"] != TM_NEVER and g["tm_end"] is not None
    assert time.monotonic() - t0 >= 2.5
    assert rc == 0, f"SIGTERM with a pending conference timer: exit code {rc}"


def test_timer_expired_while_down(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    c = cust.create_conference(timeout=1)
    keep = cust.create_conference(timeout=0)
    t_stop = time.monotonic()
    rc = srv.stop()
    time.sleep(max(0.0, 1.5 - (time.monotonic() - t_stop)))
    srv.start()
    wait_until(lambda: _status(cust, c["id"])["status"] == "terminated", timeout=3, interval=0.1,
               what="overdue timer fires at start-up")
    assert _status(cust, keep["id"])["status"] == "progressing"
    assert rc == 0, f"SIGTERM with a pending conference timer: exit code {rc}"


def test_kill9_loses_nothing(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    key = cust.create_accesskey(name="survivor")
    agent, username, password = cust.create_agent(name="agent survivor")
    ok(cust.api.put("/v1.0/customer", {"detail": "after put"}))
    c1 = cust.create_conference(name="first")
    ok(cust.api.put(f"/v1.0/conferences/{c1['id']}", {"detail": "put before kill"}))
    deleted = cust.create_conference(name="deleted")
    ok(cust.api.delete(f"/v1.0/conferences/{deleted['id']}"))
    regen = ok(cust.api.post(f"/v1.0/conferences/{c1['id']}/direct-hash-regenerate"))
    c2 = ok(cust.api.post("/v1.0/conferences", {"type": "connect", "name": "last"}))
    srv.kill9()
    srv.start()

    g1 = _status(cust, c1["id"])
    assert g1["name"] == "first" and g1["detail"] == "put before kill"
    assert g1["direct_hash"] == regen["direct_hash"]
    assert g1["status"] == "progressing"
    g2 = _status(cust, c2["id"])
    assert g2 == c2
    gd = _status(cust, deleted["id"])
    assert gd["status"] == "terminated" and gd["tm_delete"] != TM_NEVER
    ids = [x["id"] for x in list_all(cust.api, "/v1.0/conferences")]
    assert ids == [c2["id"], c1["id"]]
    assert ok(cust.api.get("/v1.0/customer"))["detail"] == "after put"
    assert ok(srv.api(key["token"], "accesskey").get("/v1.0/customer"))["id"] == cust.id
    srv.login(username, password)
    assert ok(cust.api.get(f"/v1.0/agents/{agent['id']}"))["name"] == "agent survivor"


def test_restart_keeps_bootstrap_admin(server_factory):
    srv = server_factory()
    op_token = srv.operator_token()
    op_customer = ok(srv.operator().get("/v1.0/customer"))
    assert srv.stop() == 0
    # a different env password on an existing store does not replace the admin
    original = srv.admin_password
    srv.admin_password = "another-password-123"
    srv.start()
    err(srv.api().post("/auth/login", {"username": ADMIN_USERNAME, "password": "another-password-123"}), 401,
        "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    srv.admin_password = original
    tok = srv.login(ADMIN_USERNAME, original)
    assert ok(srv.api(tok).get("/v1.0/customer"))["id"] == op_customer["id"]
    assert ok(srv.api(op_token).get("/v1.0/customer"))["id"] == op_customer["id"]
    customers = list_all(srv.api(tok), "/v1.0/customers")
    assert [c["id"] for c in customers] == [op_customer["id"]], "restart must not create another customer"


# ------------------------------------------------------------------------------------------- shutdown

def test_sigterm_exit_code_and_listen_line(server_factory):
    srv = server_factory()
    assert any(f"conferenced listening on http://127.0.0.1:{srv.port}" in l for l in srv.stdout_lines)
    ok(srv.operator().get("/v1.0/customer"))
    t0 = time.monotonic()
    assert srv.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 5


def test_sigterm_with_idle_connections(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    ws = ws_connect(srv, cust.token)
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    half = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    half.sendall(b"GET /v1.0/customer HTTP/1.1\r\nHost: x\r\n")  # never finished
    try:
        ws.send('{"type":"subscribe","topics":["customer_id:%s:conference"]}' % cust.id)
        time.sleep(0.2)
        t0 = time.monotonic()
        assert srv.stop(timeout=10) == 0
        assert time.monotonic() - t0 < 8, "shutdown must not wait long for idle clients"
    finally:
        ws.close()
        idle.close()
        half.close()


def test_sigterm_answers_request_in_flight(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    body = json.dumps({"type": "conference", "name": "in flight"}).encode()
    head = (f"POST /v1.0/conferences HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n"
            f"Authorization: Bearer {cust.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(head + body[:10])
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        s.sendall(body[10:])
        resp = http.client.HTTPResponse(s, method="POST")
        resp.begin()
        payload = resp.read()
        assert resp.status == 200, (resp.status, payload)
        created = json.loads(payload)
        assert created["name"] == "in flight"
    finally:
        s.close()
    rc = srv.proc.wait(timeout=10)
    assert rc == 0
    srv.stop()
    # what was answered is stored
    srv.start()
    assert _status(cust, created["id"])["name"] == "in flight"


def test_no_secrets_in_logs(server_factory):
    srv = server_factory()
    cust = srv.new_customer(password="very-secret-customer-pw")
    key = cust.create_accesskey()
    err(srv.api().post("/auth/login", {"username": cust.username, "password": "wrong-password-xyz"}), 401)
    ok(srv.api(key["token"], "accesskey").get("/v1.0/customer"))
    ok(srv.api(cust.token, "token").get("/v1.0/customer"))
    http_raw(srv.port, "GET", f"/v1.0/conferences?token={cust.token}")
    srv.stop()
    logs = srv.all_logs()
    for secret in (srv.admin_password, "very-secret-customer-pw", "wrong-password-xyz", key["token"], cust.token,
                   cust.token.split(".")[2]):
        assert secret not in logs, f"a secret appears in the log: {secret[:6]}..."
    stdout = "\n".join(srv.stdout_lines)
    assert srv.admin_password not in stdout
