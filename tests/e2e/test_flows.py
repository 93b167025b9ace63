"""Flows, numbers, activeflows and POST /calls through the REST API: shapes, validation and
ownership (the calls themselves are exercised with real phones in test_callflows.py)."""

import uuid

from conftest import NIL_UUID, TM_NEVER, err, list_all, ok
from phones import pcmu_offer, sip_request

FLOW_FIELDS = {"id", "customer_id", "type", "name", "detail", "actions", "on_complete_flow_id",
               "tm_create", "tm_update", "tm_delete"}
NUMBER_FIELDS = {"id", "customer_id", "number", "type", "call_flow_id", "message_flow_id", "name",
                 "detail", "status", "t38_enabled", "emergency_enabled", "tm_purchase", "tm_renew",
                 "tm_create", "tm_update", "tm_delete"}


def new_number():
    return "+1555" + str(uuid.uuid4().int)[:7]


def test_flow_create_get_put_delete(customer, other_customer):
    api = customer.api
    f = ok(api.post("/v1.0/flows", {"name": "greet", "detail": "d", "actions": [
        {"type": "answer"},
        {"type": "talk", "option": {"text": "Hello", "language": "en-US"}},
        {"type": "hangup"}]}))
    assert set(f) == FLOW_FIELDS
    assert f["type"] == "flow" and f["name"] == "greet" and f["customer_id"] == customer.id
    assert f["tm_delete"] == TM_NEVER and f["on_complete_flow_id"] == NIL_UUID
    ids = [a["id"] for a in f["actions"]]
    assert len(set(ids)) == 3 and NIL_UUID not in ids
    assert all(a["next_id"] == NIL_UUID for a in f["actions"])
    assert f["actions"][1]["option"] == {"text": "Hello", "language": "en-US"}

    assert ok(api.get(f"/v1.0/flows/{f['id']}")) == f
    err(other_customer.api.get(f"/v1.0/flows/{f['id']}"), 404, reason="FLOW_NOT_FOUND")
    err(other_customer.api.put(f"/v1.0/flows/{f['id']}", {"name": "x"}), 404)

    # only the fields sent change; ids given are kept
    g = ok(api.put(f"/v1.0/flows/{f['id']}", {"name": "renamed"}))
    assert g["name"] == "renamed" and g["actions"] == f["actions"] and g["detail"] == "d"
    keep = str(uuid.uuid4())
    g = ok(api.put(f"/v1.0/flows/{f['id']}", {"actions": [{"id": keep, "type": "answer"}]}))
    assert [a["id"] for a in g["actions"]] == [keep]

    assert f["id"] in [x["id"] for x in list_all(api, "/v1.0/flows")]
    d = ok(api.delete(f"/v1.0/flows/{f['id']}"))
    assert d["tm_delete"] != TM_NEVER
    err(api.get(f"/v1.0/flows/{f['id']}"), 404, reason="FLOW_NOT_FOUND")
    assert f["id"] not in [x["id"] for x in list_all(api, "/v1.0/flows")]


def test_flow_validation_names_the_action(customer):
    api = customer.api
    r = err(api.post("/v1.0/flows", {"actions": [{"type": "answer"}, {"type": "teleport"}]}), 400,
            reason="INVALID_ACTION_TYPE")
    assert "Action 2" in r["message"] and "teleport" in r["message"]
    r = err(api.post("/v1.0/flows", {"actions": [{"type": "talk", "option": {}}]}), 400,
            reason="INVALID_ACTION")
    assert "Action 1 (talk" in r["message"] and "text" in r["message"]
    bad = [
        [{"type": "sleep", "option": {"duration": "soon"}}],
        [{"type": "sleep", "option": {"duration": -5}}],
        [{"type": "play", "option": {"stream_urls": []}}],
        [{"type": "play", "option": {"stream_urls": ["ftp://x/y.wav"]}}],
        [{"type": "talk", "option": {"text": "hi", "language": "xx-YY"}}],
        [{"type": "digits_receive", "option": {"length": 1000}}],
        [{"type": "digits_receive", "option": {"key": "!"}}],
        [{"type": "branch", "option": {"target_ids": {"1": str(uuid.uuid4())}}}],
        [{"type": "goto", "option": {}}],
        [{"type": "goto", "option": {"target_id": str(uuid.uuid4())}}],
        [{"type": "conference_join", "option": {"conference_id": "nope"}}],
        [{"type": "fetch_flow", "option": {}}],
        [{"type": "hangup", "option": {"reason": "bored"}}],
        [{"type": "answer", "next_id": str(uuid.uuid4())}],
        [{"type": "answer", "option": "x"}],
        [{"id": "not-a-uuid", "type": "answer"}],
        [{"type": 5}],
        [7],
        {"type": "answer"},
    ]
    for actions in bad:
        r = err(api.post("/v1.0/flows", {"actions": actions}), 400)
        assert r["reason"] in ("INVALID_ACTION", "INVALID_ACTION_TYPE"), (actions, r)
    dup = str(uuid.uuid4())
    err(api.post("/v1.0/flows", {"actions": [{"id": dup, "type": "answer"},
                                             {"id": dup, "type": "answer"}]}), 400)
    err(api.post("/v1.0/flows", {"on_complete_flow_id": str(uuid.uuid4())}), 400,
        reason="INVALID_FLOW_ID")
    # nothing was stored by the refused requests
    assert list_all(api, "/v1.0/flows") == []


def test_flow_jumps_and_variables_accepted(customer):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    f = ok(customer.api.post("/v1.0/flows", {"actions": [
        {"id": a, "type": "digits_receive", "option": {"length": 4, "key": "#", "duration": 5000},
         "next_id": b},
        {"type": "hangup"},
        {"id": b, "type": "branch", "option": {"variable": "voipbin.call.digits",
                                               "target_ids": {"1234": a.upper()},
                                               "default_target_id": a}},
        {"type": "goto", "option": {"target_id": a, "loop_count": 3}},
        {"type": "talk", "option": {"text": "You called ${voipbin.call.destination.target}"}},
        {"type": "conference_join", "option": {"conference_id": "${room}"}},
        {"type": "play", "option": {"stream_urls": ["http://127.0.0.1:1/x.wav", "/tmp/x.wav"]}},
    ]}))
    assert f["actions"][0]["next_id"] == b
    assert f["actions"][2]["option"]["target_ids"] == {"1234": a}  # normalised


def test_conference_pre_and_post_flow_must_exist(customer, other_customer):
    flow = ok(customer.api.post("/v1.0/flows", {"actions": [{"type": "answer"}]}))
    c = ok(customer.api.post("/v1.0/conferences", {"type": "conference", "pre_flow_id": flow["id"],
                                                   "post_flow_id": flow["id"]}))
    assert c["pre_flow_id"] == flow["id"] and c["post_flow_id"] == flow["id"]
    err(other_customer.api.post("/v1.0/conferences", {"type": "conference",
                                                      "pre_flow_id": flow["id"]}), 400,
        reason="INVALID_FLOW_ID")


def test_numbers(customer, other_customer):
    api = customer.api
    flow = ok(api.post("/v1.0/flows", {"actions": [{"type": "answer"}]}))
    num = new_number()
    n = ok(api.post("/v1.0/numbers", {"number": num, "call_flow_id": flow["id"], "name": "main",
                                      "detail": "support line"}))
    assert set(n) == NUMBER_FIELDS
    assert n["number"] == num and n["call_flow_id"] == flow["id"] and n["status"] == "active"
    assert n["message_flow_id"] == NIL_UUID and n["type"] == "normal"
    assert ok(api.get(f"/v1.0/numbers/{n['id']}")) == n
    err(other_customer.api.get(f"/v1.0/numbers/{n['id']}"), 404, reason="NUMBER_NOT_FOUND")
    # taken (by anyone), malformed, someone else's flow, missing
    err(other_customer.api.post("/v1.0/numbers", {"number": num}), 409, reason="NUMBER_EXISTS")
    for bad in ("5551234", "+", "+1555abc", "+" + "1" * 25, 15551234):
        r = err(api.post("/v1.0/numbers", {"number": bad}), 400)
        assert r["reason"] in ("INVALID_NUMBER", "INVALID_FIELD_TYPE", "INVALID_FIELD_VALUE"), r
    err(api.post("/v1.0/numbers", {}), 400, reason="INVALID_NUMBER")
    other_flow = ok(other_customer.api.post("/v1.0/flows", {"actions": []}))
    err(api.post("/v1.0/numbers", {"number": new_number(), "call_flow_id": other_flow["id"]}), 400,
        reason="INVALID_FLOW_ID")
    # PUT changes what is sent; the number itself stays
    m = ok(api.put(f"/v1.0/numbers/{n['id']}", {"name": "renamed", "call_flow_id": NIL_UUID}))
    assert m["name"] == "renamed" and m["call_flow_id"] == NIL_UUID and m["detail"] == "support line"
    err(api.put(f"/v1.0/numbers/{n['id']}", {"number": new_number()}), 400, reason="INVALID_NUMBER")
    assert n["id"] in [x["id"] for x in list_all(api, "/v1.0/numbers")]
    d = ok(api.delete(f"/v1.0/numbers/{n['id']}"))
    assert d["status"] == "deleted" and d["tm_delete"] != TM_NEVER
    err(api.get(f"/v1.0/numbers/{n['id']}"), 404)
    # a deleted number can be taken again
    ok(other_customer.api.post("/v1.0/numbers", {"number": num}))


def test_inbound_routing_refusals(server, customer):
    # an unknown number, a number without a call flow, a number whose flow was deleted: 404
    status, _ = sip_request(server.sip_port, "INVITE", f"sip:+19990000000@127.0.0.1:{server.sip_port}",
                            sdp=pcmu_offer())
    assert status == 404
    num = new_number()
    n = ok(customer.api.post("/v1.0/numbers", {"number": num}))
    status, _ = sip_request(server.sip_port, "INVITE", f"sip:{num}@127.0.0.1:{server.sip_port}",
                            sdp=pcmu_offer())
    assert status == 404
    flow = ok(customer.api.post("/v1.0/flows", {"actions": [{"type": "answer"}]}))
    ok(customer.api.put(f"/v1.0/numbers/{n['id']}", {"call_flow_id": flow["id"]}))
    ok(customer.api.delete(f"/v1.0/flows/{flow['id']}"))
    status, _ = sip_request(server.sip_port, "INVITE", f"sip:{num}@127.0.0.1:{server.sip_port}",
                            sdp=pcmu_offer())
    assert status == 404


def test_post_calls_validation(customer, other_customer):
    api = customer.api
    dst = [{"type": "sip", "target": "sip:nobody@127.0.0.1:9"}]
    act = [{"type": "answer"}]
    cases = [
        ({"actions": act}, "INVALID_DESTINATION"),
        ({"destinations": [], "actions": act}, "INVALID_DESTINATION"),
        ({"destinations": dst * 11, "actions": act}, "INVALID_DESTINATION"),
        ({"destinations": [{"type": "tel", "target": "+15551234567"}], "actions": act},
         "INVALID_DESTINATION"),
        ({"destinations": [{"type": "sip", "target": "no-at-sign"}], "actions": act},
         "INVALID_DESTINATION"),
        ({"destinations": ["sip:a@b"], "actions": act}, "INVALID_ADDRESS"),
        ({"destinations": dst}, "INVALID_FLOW"),
        ({"destinations": dst, "actions": [{"type": "fly"}]}, "INVALID_ACTION_TYPE"),
        ({"destinations": dst, "flow_id": str(uuid.uuid4())}, "INVALID_FLOW_ID"),
        ({"destinations": dst, "actions": act, "variables": {"a": 1}}, "INVALID_VARIABLES"),
        ({"destinations": dst, "actions": act, "source": "me"}, "INVALID_ADDRESS"),
        ({"destinations": dst, "flow_id": "nope"}, "INVALID_FIELD_VALUE"),
    ]
    for body, reason in cases:
        err(api.post("/v1.0/calls", body), 400, reason=reason)
    other_flow = ok(other_customer.api.post("/v1.0/flows", {"actions": act}))
    err(api.post("/v1.0/calls", {"destinations": dst, "flow_id": other_flow["id"]}), 400,
        reason="INVALID_FLOW_ID")
    assert list_all(api, "/v1.0/calls") == []


def test_activeflows_api_errors(customer):
    api = customer.api
    err(api.get(f"/v1.0/activeflows/{uuid.uuid4()}"), 404, reason="ACTIVEFLOW_NOT_FOUND")
    err(api.post(f"/v1.0/activeflows/{uuid.uuid4()}/stop"), 404, reason="ACTIVEFLOW_NOT_FOUND")
    err(api.delete(f"/v1.0/activeflows/{uuid.uuid4()}"), 404)
    err(api.get("/v1.0/activeflows/not-a-uuid"), 400)
    assert ok(api.get("/v1.0/activeflows"))["result"] == []
