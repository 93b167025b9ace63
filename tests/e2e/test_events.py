"""Events (SPEC §7): webhooks and the WebSocket feed."""

import json
import socket
import time

import pytest
import websocket

from conftest import (event_is, ok, ws_collect, ws_connect, ws_recv_json, ws_wait_for)


def set_webhook(cust, uri, method="POST"):
    c = ok(cust.api.put("/v1.0/customer", {"webhook_uri": uri, "webhook_method": method}))
    assert c["webhook_uri"] == uri and c["webhook_method"] == method
    return c


def belongs(rec, cust_id):
    """True when a webhook/ws event is about a resource of customer cust_id."""
    j = rec["json"] if "json" in rec else rec
    if not isinstance(j, dict):
        return False
    d = j.get("data") or {}
    if str(j.get("type", "")).startswith("customer_"):
        return d.get("id") == cust_id
    return d.get("customer_id") == cust_id


def conf_events(receiver, conf_id):
    out = []
    for r in receiver.matching(lambda r: isinstance(r["json"], dict)
                               and (r["json"].get("data") or {}).get("id") == conf_id):
        out.append(r)
    return out


# ------------------------------------------------------------------------------------------- webhooks

def test_webhook_conference_lifecycle(server, customer, receiver):
    set_webhook(customer, receiver.url)
    c = customer.create_conference(name="hooked")
    created = receiver.wait_for(event_is("conference_created", c["id"]), what="conference_created")
    assert created["method"] == "POST"
    assert created["path"] == "/hook"
    assert created["headers"].get("Content-Type", "").startswith("application/json")
    data = created["json"]["data"]
    assert set(created["json"]) >= {"type", "data"}
    assert data["customer_id"] == customer.id and data["name"] == "hooked" and data["type"] == "conference"
    assert data["direct_hash"] == c["direct_hash"]
    for k in ("conferencecall_ids", "recording_ids", "transcribe_ids", "data", "tm_create", "tm_delete", "tm_end"):
        assert k in data, f"event data lacks {k}: {data}"

    ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "renamed"}))
    upd = receiver.wait_for(lambda r: event_is("conference_updated", c["id"])(r)
                            and r["json"]["data"]["name"] == "renamed", what="conference_updated")
    assert upd["method"] == "POST"

    ok(customer.api.delete(f"/v1.0/conferences/{c['id']}"))
    receiver.wait_for(event_is("conference_deleted", c["id"], "terminated"), what="conference_deleted terminated")
    time.sleep(0.3)  # let any straggler arrive before checking the order

    seq = [(r["json"]["type"], r["json"]["data"].get("status"), r["json"]["data"].get("name"))
           for r in conf_events(receiver, c["id"])]
    types = [t for t, _, _ in seq]
    assert types[0] == "conference_created", seq
    deleted = [(t, s) for t, s, _ in seq if t == "conference_deleted"]
    assert deleted == [("conference_deleted", "terminating"), ("conference_deleted", "terminated")], seq
    i_upd = next(i for i, (t, _, n) in enumerate(seq) if t == "conference_updated" and n == "renamed")
    i_del = types.index("conference_deleted")
    assert 0 < i_upd < i_del, seq
    assert types[-1] == "conference_deleted", seq
    last = conf_events(receiver, c["id"])[-1]["json"]["data"]
    assert last["tm_delete"] != "9999-01-01 00:00:00.000000" and last["tm_end"] is not None
    first_del = [r for r in conf_events(receiver, c["id"]) if r["json"]["type"] == "conference_deleted"][0]
    assert first_del["json"]["data"]["tm_delete"] != "9999-01-01 00:00:00.000000"


def test_webhook_retries_on_5xx(server, customer, receiver):
    attempts = {"n": 0}

    def status_for(rec):
        j = rec["json"]
        if isinstance(j, dict) and j.get("type") == "conference_created":
            attempts["n"] += 1
            return 500 if attempts["n"] <= 2 else 200
        return 200

    receiver.status_for = status_for
    set_webhook(customer, receiver.url)
    c = customer.create_conference()
    pred = event_is("conference_created", c["id"])
    t0 = time.monotonic()
    receiver.wait_for(lambda r: len(receiver.matching(pred)) >= 3, timeout=8, what="3 delivery attempts")
    took = time.monotonic() - t0
    time.sleep(1.5)
    got = receiver.matching(pred)
    assert len(got) == 3, [r["answered"] for r in got]
    assert [r["answered"] for r in got] == [500, 500, 200]
    assert got[0]["body"] == got[1]["body"] == got[2]["body"]
    gaps = [got[i + 1]["time"] - got[i]["time"] for i in range(2)]
    assert all(0.5 <= g <= 3.0 for g in gaps), gaps
    assert took < 8


def test_webhook_gives_up_after_three_attempts(server, customer, receiver):
    receiver.status_for = lambda rec: 503
    set_webhook(customer, receiver.url)
    c = customer.create_conference()
    pred = event_is("conference_created", c["id"])
    receiver.wait_for(lambda r: len(receiver.matching(pred)) >= 3, timeout=8, what="3 delivery attempts")
    time.sleep(2.0)
    assert len(receiver.matching(pred)) == 3
    # the API is unaffected and later events are still delivered
    receiver.status_for = lambda rec: 200
    ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "after"}))
    receiver.wait_for(lambda r: event_is("conference_updated", c["id"])(r) and r["answered"] == 200,
                      what="later event delivered")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_webhook_method_honoured(server, customer, receiver, method):
    set_webhook(customer, receiver.url, method)
    c = customer.create_conference()
    rec = receiver.wait_for(event_is("conference_created", c["id"]), what=f"{method} hook")
    assert rec["method"] == method and rec["path"].startswith("/hook"), rec
    assert all(r["method"] == method for r in receiver.matching(lambda r: True))


def test_no_webhook_no_delivery_and_isolation(server, customer, other_customer, receiver_factory):
    ra = receiver_factory()
    rb = receiver_factory()
    set_webhook(customer, ra.url)
    # other_customer has no webhook: nothing anywhere
    silent = other_customer.create_conference(name="silent")
    mine = customer.create_conference(name="mine")
    ra.wait_for(event_is("conference_created", mine["id"]), what="A's own event")
    time.sleep(0.8)
    assert not ra.matching(lambda r: belongs(r, other_customer.id))
    assert not rb.records
    # B gets its own receiver: B's events go there only
    set_webhook(other_customer, rb.url)
    theirs = other_customer.create_conference(name="theirs")
    rb.wait_for(event_is("conference_created", theirs["id"]), what="B's event")
    ok(other_customer.api.put(f"/v1.0/conferences/{silent['id']}", {"name": "silent2"}))
    rb.wait_for(event_is("conference_updated", silent["id"]), what="B's update")
    time.sleep(0.8)
    assert not ra.matching(lambda r: belongs(r, other_customer.id))
    assert all(belongs(r, other_customer.id) for r in rb.records)
    # clearing the webhook stops delivery
    set_webhook(customer, "", "POST")
    late = customer.create_conference(name="after clear")
    ok(customer.api.put(f"/v1.0/conferences/{late['id']}", {"name": "after clear 2"}))
    time.sleep(1.0)
    assert not ra.matching(lambda r: belongs(r, customer.id) and (r["json"].get("data") or {}).get("id") == late["id"])


def test_webhook_never_blocks_api(server, customer, receiver):
    # a receiver that takes 3 s per request
    receiver.delay = 3.0
    set_webhook(customer, receiver.url)
    t0 = time.monotonic()
    c = customer.create_conference()
    ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "x"}))
    ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))
    assert time.monotonic() - t0 < 1.5, "API calls must not wait for webhook delivery"
    # an unreachable receiver (closed port) does not block either
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    set_webhook(customer, f"http://127.0.0.1:{dead_port}/hook")
    t0 = time.monotonic()
    for _ in range(3):
        customer.create_conference()
    assert time.monotonic() - t0 < 1.5
    receiver.delay = 0.0


# ------------------------------------------------------------------------------------------- websocket

def _subscribe(ws, *topics, verb="subscribe"):
    """Sends a (un)subscribe and waits for its answer, which lists the topics accepted."""
    ws.send(json.dumps({"type": verb, "topics": list(topics)}))
    answer = verb + "d"
    m, seen = ws_wait_for(ws, lambda m: m.get("type") in (answer, "error"), what=f"{answer} answer")
    assert m["type"] == answer, m
    return m["data"]["topics"]


def _ws_close_code(ws, timeout=5.0):
    """Waits for the server's close frame; returns (code, reason). Data frames are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no close frame from the server"
        ws.settimeout(left)
        try:
            op, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            raise AssertionError("connection closed without a close frame") from None
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            return code, data[2:].decode("utf-8", "replace")


def _is(type_, conf_id, status=None):
    def pred(m):
        return (m.get("type") == type_ and (m.get("data") or {}).get("id") == conf_id
                and (status is None or m["data"].get("status") == status))
    return pred


def test_ws_requires_credentials(server, customer):
    for kwargs in ({}, {"token": "garbage", "mode": "token"}, {"token": "garbage", "mode": "bearer"},
                   {"token": "cf_garbage000000000000", "mode": "accesskey"}):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            ws = ws_connect(server, **kwargs)
            ws.close()
        assert ei.value.status_code == 401, kwargs


@pytest.mark.parametrize("mode", ["token", "bearer", "accesskey"])
def test_ws_conference_events(server, customer, mode):
    tok = customer.token if mode != "accesskey" else customer.create_accesskey()["token"]
    ws = ws_connect(server, tok, mode)
    try:
        _subscribe(ws, f"customer_id:{customer.id}:conference")
        c = customer.create_conference(name="ws")
        m, _ = ws_wait_for(ws, _is("conference_created", c["id"]), what="conference_created frame")
        assert m["data"]["customer_id"] == customer.id and m["data"]["name"] == "ws"
        ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "ws2"}))
        m, _ = ws_wait_for(ws, lambda m: _is("conference_updated", c["id"])(m) and m["data"]["name"] == "ws2",
                           what="conference_updated frame")
        ok(customer.api.delete(f"/v1.0/conferences/{c['id']}"))
        _, seen = ws_wait_for(ws, _is("conference_deleted", c["id"], "terminated"), what="deleted/terminated")
        statuses = [m["data"]["status"] for m in seen if m.get("type") == "conference_deleted"]
        assert statuses == ["terminating", "terminated"], seen
    finally:
        ws.close()


def test_ws_single_conference_topic_and_unsubscribe(server, customer):
    c1 = customer.create_conference(name="one")
    c2 = customer.create_conference(name="two")
    ws = ws_connect(server, customer.token)
    try:
        topic = f"customer_id:{customer.id}:conference:{c1['id']}"
        _subscribe(ws, topic)
        ok(customer.api.put(f"/v1.0/conferences/{c2['id']}", {"name": "two-b"}))
        ok(customer.api.put(f"/v1.0/conferences/{c1['id']}", {"name": "one-b"}))
        customer.create_conference(name="three")
        m, seen = ws_wait_for(ws, _is("conference_updated", c1["id"]), what="c1 update")
        seen += ws_collect(ws, 0.7)
        ids = {(x.get("data") or {}).get("id") for x in seen}
        assert ids == {c1["id"]}, seen

        assert _subscribe(ws, topic, verb="unsubscribe") == [topic]
        ok(customer.api.put(f"/v1.0/conferences/{c1['id']}", {"name": "one-c"}))
        assert ws_collect(ws, 1.0) == []
    finally:
        ws.close()


def test_ws_foreign_topic_refused(server, customer, other_customer):
    ws = ws_connect(server, customer.token)
    try:
        ws.send(json.dumps({"type": "subscribe", "topics": [f"customer_id:{other_customer.id}:conference"]}))
        m = ws_recv_json(ws, 3.0)
        assert m is not None, "expected an error frame"
        assert m.get("type") == "error", m
        assert isinstance(m.get("data"), dict) and isinstance(m["data"].get("message"), str) \
            and m["data"]["message"], m
        time.sleep(0.2)
        other_customer.create_conference(name="foreign")
        assert ws_collect(ws, 1.0) == []
        # the connection still works for our own topic
        _subscribe(ws, f"customer_id:{customer.id}:conference")
        c = customer.create_conference()
        ws_wait_for(ws, _is("conference_created", c["id"]), what="own event after error")
    finally:
        ws.close()


def test_ws_garbage_messages(server, customer):
    ws = ws_connect(server, customer.token)
    try:
        for msg in ("not json", "[]", '{"type":"subscribe"}', '{"type":"subscribe","topics":"x"}',
                    '{"type":"subscribe","topics":[1,2]}', '{"type":"nope"}', "{}", "x" * 70000):
            ws.send(msg)
        ws.send_binary(b"\x00\x01\x02")
        time.sleep(0.3)
        frames = ws_collect(ws, 0.5)
        for f in frames:
            assert f.get("type") == "error", f
    except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
        pass  # closing the connection on garbage is acceptable
    finally:
        ws.close()
    assert server.alive()
    ok(customer.api.get("/v1.0/customer"))
    # a fresh connection works
    ws = ws_connect(server, customer.token)
    try:
        _subscribe(ws, f"customer_id:{customer.id}:conference")
        c = customer.create_conference()
        ws_wait_for(ws, _is("conference_created", c["id"]), what="event after garbage")
    finally:
        ws.close()


def test_events_of_one_resource_arrive_in_order(server, customer, receiver):
    set_webhook(customer, receiver.url)
    ws = ws_connect(server, customer.token)
    try:
        _subscribe(ws, f"customer_id:{customer.id}:conference")
        c = customer.create_conference(name="n-init")
        names = [f"n{i}" for i in range(10)]
        for n in names:
            ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": n}))
        last = lambda r: event_is("conference_updated", c["id"])(r) and r["json"]["data"]["name"] == "n9"  # noqa: E731
        receiver.wait_for(last, what="last update")
        hook_names = [r["json"]["data"]["name"] for r in receiver.matching(event_is("conference_updated", c["id"]))]
        assert [n for n in hook_names if n in names] == names, hook_names
        _, seen = ws_wait_for(ws, lambda m: _is("conference_updated", c["id"])(m) and m["data"]["name"] == "n9",
                              what="last ws update")
        ws_names = [m["data"]["name"] for m in seen if _is("conference_updated", c["id"])(m)]
        assert [n for n in ws_names if n in names] == names, ws_names
        assert seen[0]["type"] == "conference_created", seen[0]
    finally:
        ws.close()


def test_webhook_method_defaults_to_post(server, customer, receiver):
    cur = ok(customer.api.put("/v1.0/customer", {"webhook_method": ""}))
    assert cur["webhook_method"] == "POST"  # "" means the default, shown as what is used
    ok(customer.api.put("/v1.0/customer", {"webhook_uri": receiver.url}))
    c = customer.create_conference()
    rec = receiver.wait_for(event_is("conference_created", c["id"]), what="conference_created")
    assert rec["method"] == "POST"


# ------------------------------------------------------------------------------- websocket (issue 8)

KINDS = ["activeflow", "agent", "call", "conference", "conferencecall", "customer", "flow", "number"]


def test_ws_subscribe_answers_with_topics(server, customer):
    ws = ws_connect(server, customer.token)
    try:
        cid = customer.id
        conf = customer.create_conference()
        topics = [f"customer_id:{cid}:conference", f"customer_id:{cid.upper()}:conference:{conf['id'].upper()}",
                  f"customer_id:{cid}:conference"]
        assert _subscribe(ws, *topics) == [f"customer_id:{cid}:conference",
                                           f"customer_id:{cid}:conference:{conf['id']}"]
        # every kind the server publishes, with and without an id
        for kind in KINDS:
            assert _subscribe(ws, f"customer_id:{cid}:{kind}", f"customer_id:{cid}:{kind}:{conf['id']}") == \
                [f"customer_id:{cid}:{kind}", f"customer_id:{cid}:{kind}:{conf['id']}"]
        assert _subscribe(ws, f"customer_id:{cid}:flow", verb="unsubscribe") == [f"customer_id:{cid}:flow"]
        ok(customer.api.put(f"/v1.0/conferences/{conf['id']}", {"name": "after answers"}))
        ws_wait_for(ws, _is("conference_updated", conf["id"]), what="event after the answers")
    finally:
        ws.close()


def test_ws_unknown_kind_is_named(server, customer):
    ws = ws_connect(server, customer.token)
    try:
        ws.send(json.dumps({"type": "subscribe", "topics": [f"customer_id:{customer.id}:conference",
                                                             f"customer_id:{customer.id}:conferences"]}))
        m = ws_recv_json(ws, 3.0)
        assert m and m["type"] == "error", m
        msg = m["data"]["message"]
        assert "unknown topic kind 'conferences'" in msg, msg
        assert "known kinds: " + ", ".join(KINDS) in msg, msg
        # nothing of that message was applied
        customer.create_conference()
        assert ws_collect(ws, 0.7) == []
    finally:
        ws.close()


def _agent_stream(server, customer, permission=32):
    a, username, password = customer.create_agent(permission=permission)
    tok = server.login(username, password)
    ws = ws_connect(server, tok)
    _subscribe(ws, f"customer_id:{customer.id}:conference")
    return a, username, ws


def test_ws_closed_when_agent_deleted(server, customer):
    a, _, ws = _agent_stream(server, customer)
    other = ws_connect(server, customer.token)  # the customer admin's own stream stays
    try:
        _subscribe(other, f"customer_id:{customer.id}:conference")
        c = customer.create_conference()
        ws_wait_for(ws, _is("conference_created", c["id"]), what="event before the delete")
        ok(customer.api.delete(f"/v1.0/agents/{a['id']}"))
        code, reason = _ws_close_code(ws)
        assert code == 1008 and reason == "agent deleted", (code, reason)
        ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "after"}))
        ws_wait_for(other, lambda m: _is("conference_updated", c["id"])(m) and m["data"]["name"] == "after",
                    what="the other stream still gets events")
    finally:
        ws.close()
        other.close()


def test_ws_closed_when_agent_password_changes(server, customer):
    a, _, ws = _agent_stream(server, customer)
    try:
        ok(customer.api.put(f"/v1.0/agents/{a['id']}", {"name": "only the name"}))
        c = customer.create_conference()
        ws_wait_for(ws, _is("conference_created", c["id"]), what="stream kept after a name change")
        ok(customer.api.put(f"/v1.0/agents/{a['id']}", {"password": "a-new-password-1"}))
        code, reason = _ws_close_code(ws)
        assert code == 1008 and reason == "agent password changed", (code, reason)
    finally:
        ws.close()


def test_ws_closed_when_accesskey_deleted(server, customer):
    k1 = customer.create_accesskey()
    k2 = customer.create_accesskey()
    ws1 = ws_connect(server, k1["token"], "accesskey")
    ws2 = ws_connect(server, k2["token"], "accesskey")
    try:
        _subscribe(ws1, f"customer_id:{customer.id}:conference")
        _subscribe(ws2, f"customer_id:{customer.id}:conference")
        ok(customer.api.delete(f"/v1.0/accesskeys/{k1['id']}"))
        code, reason = _ws_close_code(ws1)
        assert code == 1008 and reason == "access key deleted", (code, reason)
        c = customer.create_conference()
        ws_wait_for(ws2, _is("conference_created", c["id"]), what="the other key's stream stays")
    finally:
        ws1.close()
        ws2.close()


def test_ws_closed_when_accesskey_expires(server, customer):
    k = customer.create_accesskey(expire=2)
    ws = ws_connect(server, k["token"], "accesskey")
    try:
        _subscribe(ws, f"customer_id:{customer.id}:conference")
        t0 = time.monotonic()
        code, reason = _ws_close_code(ws, timeout=6)
        assert code == 1008 and reason == "credential expired", (code, reason)
        assert time.monotonic() - t0 < 4.5
    finally:
        ws.close()

