"""Timeouts, restarts, kill -9, SIGTERM, bootstrap, secrets in logs."""

import http.client
import json
import signal
import socket
import time

import pytest

from conftest import (ADMIN_USERNAME, TM_NEVER, err, http_raw, list_all, ok, parse_ts, wait_until, ws_connect)
from phones import Phone, RawCall, have_baresip, make_tone


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


# ------------------------------------------------------------------------- calls across a stop

def _call_in_conference(srv, cust, receiver):
    """A raw SIP caller in a new conference of cust (webhooks to receiver): (raw, conf, call, cc)."""
    ok(cust.api.put("/v1.0/customer", {"webhook_uri": receiver.url}))
    conf = cust.create_conference(name="across a stop")
    raw = RawCall(srv.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
    assert raw.connect() == 200

    def joined():
        c = ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))
        if len(c["conferencecall_ids"]) != 1:
            return None
        cc = ok(cust.api.get(f"/v1.0/conferencecalls/{c['conferencecall_ids'][0]}"))
        return cc if cc["status"] == "joined" else None

    cc = wait_until(joined, 5, what="participant joined")
    call = ok(cust.api.get(f"/v1.0/calls/{cc['reference_id']}"))
    assert call["status"] == "progressing"
    return raw, conf, call, cc


def _event(type_, pred=lambda d: True):
    def match(r):
        j = r["json"]
        return isinstance(j, dict) and j.get("type") == type_ and pred(j.get("data") or {})
    return match


def _drain(sock):
    sock.settimeout(0)
    try:
        while sock.recvfrom(65535):
            pass
    except OSError:
        pass


def _hdr(msg, name):
    for line in msg.split("\r\n"):
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return ""


def test_kill9_with_a_call_up_byes_and_leaves_at_start(server_factory, receiver):
    """After kill -9 with a call in a conference, the next start sends the phone a BYE in its
    dialog at once, marks the call hung up and the participant leaved (with the events and the
    conference's update) rather than after the health checks."""
    srv = server_factory()
    cust = srv.new_customer()
    raw, conf, call, cc = _call_in_conference(srv, cust, receiver)
    server_tag = raw.to.split("tag=")[1].split(";")[0]
    try:
        srv.kill9()
        t0 = time.monotonic()
        srv.start()
        assert raw.wait_bye(5), "no BYE after the restart"
        took = time.monotonic() - t0
        assert took < 4, f"BYE {took:.1f}s after the restart"
        bye = raw.last_bye
        assert bye.startswith(f"BYE sip:raw@127.0.0.1:{raw.lport} SIP/2.0"), bye
        assert _hdr(bye, "Call-ID") == raw.call_id, bye
        assert f"tag={raw.tag}" in _hdr(bye, "To") and f"tag={server_tag}" in _hdr(bye, "From"), bye
        assert _hdr(bye, "CSeq").endswith(" BYE"), bye
        # already done when the server answers its first request
        g = ok(cust.api.get(f"/v1.0/conferencecalls/{cc['id']}"))
        assert g["status"] == "leaved", g
        assert ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))["conferencecall_ids"] == []
        c = ok(cust.api.get(f"/v1.0/calls/{call['id']}"))
        assert c["status"] == "hangup" and c["hangup_by"] == "local", c
        receiver.wait_for(_event("conferencecall_leaved", lambda d: d.get("id") == cc["id"]), 5,
                          what="conferencecall_leaved")
        receiver.wait_for(_event("conference_updated", lambda d: d.get("id") == conf["id"]
                                 and d.get("conferencecall_ids") == []), 5, what="conference_updated")
        receiver.wait_for(_event("call_hangup", lambda d: d.get("id") == call["id"]), 5,
                          what="call_hangup")
        # the BYE is sent once: nothing more at the next start
        assert srv.stop() == 0
        _drain(raw.sip)
        srv.start()
        assert not raw.wait_bye(1.0)
    finally:
        raw.close()


@pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")
def test_kill9_with_an_outgoing_call_byes_the_phone(server_factory, tmp_path):
    """The same for a call we dialled out (our own dialog: our From tag, the phone's Contact and
    To tag, our next CSeq): a real phone (baresip) that answered hears the BYE after the restart
    and ends the call."""
    srv = server_factory()
    cust = srv.new_customer()
    wav = tmp_path / "tone.wav"
    make_tone(wav, 440, seconds=30)
    phone = Phone(tmp_path, "bob", wav, auto_answer=True).listen(seconds=40)
    try:
        r = ok(cust.api.post("/v1.0/calls", {"destinations": [{"type": "sip", "target": phone.uri}],
                                             "actions": [{"type": "sleep", "option": {"duration": 60000}}]}))
        call_id = r["calls"][0]["id"]
        wait_until(lambda: ok(cust.api.get(f"/v1.0/calls/{call_id}"))["status"] == "progressing", 10,
                   what="the phone answered")
        wait_until(lambda: "Call established" in phone.log(), 5, what="baresip up")
        srv.kill9()
        assert "terminated" not in phone.log()
        t0 = time.monotonic()
        srv.start()
        # baresip logs "session closed" when a BYE ends the call ("terminated" may come later)
        wait_until(lambda: "session closed" in phone.log(), 5, what="baresip got the BYE")
        assert time.monotonic() - t0 < 5
        assert "session closed: Connection reset by peer" in phone.log(), phone.log()[-800:]
        assert "sip_bye_saved" in srv.log_tail(60)
        c = ok(cust.api.get(f"/v1.0/calls/{call_id}"))
        assert c["status"] == "hangup" and c["direction"] == "outgoing", c
    finally:
        phone.stop()


def _sigterm_with_a_call(server_factory, receiver, answer_bye):
    srv = server_factory(extra_args=["--shutdown-grace-ms", "3000"])
    cust = srv.new_customer()
    raw, conf, call, cc = _call_in_conference(srv, cust, receiver)
    got = []
    try:
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        if answer_bye:
            got.append(raw.wait_bye(3))
        else:
            raw.sip.settimeout(3)
            got.append(raw.sip.recvfrom(65535)[0].decode().startswith("BYE "))
        rc = srv.proc.wait(timeout=10)
        took = time.monotonic() - t0
        assert got == [True], "no BYE at shutdown"
        assert rc == 0 and took < 3.5, (rc, took)
        # delivered before the process exited
        hang = receiver.matching(_event("call_hangup", lambda d: d.get("id") == call["id"]))
        assert hang and hang[0]["json"]["data"]["hangup_by"] == "local", [r["json"] for r in hang]
        assert hang[0]["json"]["data"]["hangup_reason"] == "normal"
        assert receiver.matching(_event("conferencecall_leaved", lambda d: d.get("id") == cc["id"]))
        assert receiver.matching(_event("conference_updated", lambda d: d.get("id") == conf["id"]
                                        and d.get("conferencecall_ids") == []))
        srv.stop()
        _drain(raw.sip)  # the retransmissions of a BYE nobody answered
        srv.start()
        assert ok(cust.api.get(f"/v1.0/conferencecalls/{cc['id']}"))["status"] == "leaved"
        assert ok(cust.api.get(f"/v1.0/calls/{call['id']}"))["status"] == "hangup"
        assert not raw.wait_bye(0.5), "a call ended at shutdown gets no second BYE"
    finally:
        raw.close()
    return took


def test_sigterm_hangs_up_calls_and_delivers_their_events(server_factory, receiver):
    """SIGTERM with a call in a conference: the phone gets a BYE, and call_hangup,
    conferencecall_leaved and conference_updated reach the webhook before the process exits (within
    the grace period); the store shows the participant leaved."""
    took = _sigterm_with_a_call(server_factory, receiver, answer_bye=True)
    assert took < 1.5, f"a BYE that is answered at once should not take {took:.1f}s"


def test_sigterm_bye_never_answered(server_factory, receiver):
    """The same when the phone never answers the BYE: after half the grace period the call is ended
    anyway, and its events still go out."""
    took = _sigterm_with_a_call(server_factory, receiver, answer_bye=False)
    assert took >= 1.4, took
