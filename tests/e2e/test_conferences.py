"""Conferences (SPEC §3, §6), the recording and transcription endpoints' errors (§5),
conferencecalls (§4). Recording itself: test_recording.py; transcription: test_transcribe.py."""

import http.client
import json
import time
import uuid

import pytest

from conftest import (DIRECT_HASH_RE, NIL_UUID, TM_NEVER, check_conference, check_fresh_conference, err,
                      list_all, ok, parse_ts, utcnow)

TRANSCRIBE = ["transcribe_start", "transcribe_stop"]
RECORDING = ["recording_start", "recording_stop"]


def test_create_full_object(server, customer):
    before = utcnow()
    c = ok(customer.api.post("/v1.0/conferences", {"type": "conference", "name": "test conference",
                                                   "detail": "test conference for example",
                                                   "data": {"k": "v", "n": [1, 2, {"x": None}]},
                                                   "timeout": 3600}))
    check_fresh_conference(c, customer.id)
    assert c["type"] == "conference"
    assert c["name"] == "test conference" and c["detail"] == "test conference for example"
    assert c["data"] == {"k": "v", "n": [1, 2, {"x": None}]}
    assert c["timeout"] == 3600
    assert c["pre_flow_id"] == NIL_UUID and c["post_flow_id"] == NIL_UUID
    created = parse_ts(c["tm_create"])
    assert abs((created - before).total_seconds()) < 10, "tm_create must be UTC now"

    got = ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))
    check_conference(got, customer.id)
    assert got == c


def test_create_minimal_and_defaults(server, customer):
    c = ok(customer.api.post("/v1.0/conferences", {"type": "connect"}))
    check_fresh_conference(c, customer.id)
    assert c["type"] == "connect"
    assert c["name"] == "" and c["detail"] == "" and c["data"] == {} and c["timeout"] == 0
    assert c["pre_flow_id"] == NIL_UUID and c["post_flow_id"] == NIL_UUID


def test_null_means_absent_and_unknown_fields_ignored(server, customer):
    c = ok(customer.api.post("/v1.0/conferences", {
        "type": "conference", "name": None, "detail": None, "data": None, "timeout": None,
        "pre_flow_id": None, "post_flow_id": None, "unknown": {"deep": [1]}, "status": "terminated",
        "id": "11111111-1111-4111-8111-111111111111", "direct_hash": "direct.000000000000",
        "customer_id": "11111111-1111-4111-8111-111111111111"}))
    check_fresh_conference(c, customer.id)
    assert c["name"] == "" and c["data"] == {} and c["timeout"] == 0
    assert c["id"] != "11111111-1111-4111-8111-111111111111"
    assert c["direct_hash"] != "direct.000000000000"


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_content_type_not_checked(server, customer, ctype):
    r = customer.api.post("/v1.0/conferences", '{"type":"conference","name":"curl -d"}', content_type=ctype)
    c = ok(r)
    assert c["name"] == "curl -d"


def test_create_validation(server, customer):
    api = customer.api
    e = err(api.post("/v1.0/conferences", {"name": "no type"}), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    assert "type" in e["message"]
    err(api.post("/v1.0/conferences", {"type": None}), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    for body, reason in [
        ({"type": "foo"}, "INVALID_FIELD_VALUE"),
        ({"type": ""}, "INVALID_FIELD_VALUE"),
        ({"type": "Conference"}, "INVALID_FIELD_VALUE"),
        ({"type": 1}, "INVALID_FIELD_TYPE"),
        ({"type": "conference", "timeout": -1}, "INVALID_FIELD_VALUE"),
        ({"type": "conference", "timeout": 31536001}, "INVALID_FIELD_VALUE"),
        ({"type": "conference", "timeout": 2 ** 63}, ("INVALID_FIELD_VALUE", "INVALID_FIELD_TYPE",
                                                      "INVALID_JSON_BODY")),
        ({"type": "conference", "timeout": 2 ** 40}, "INVALID_FIELD_VALUE"),
        ({"type": "conference", "timeout": "10"}, "INVALID_FIELD_TYPE"),
        ({"type": "conference", "timeout": 1.5}, ("INVALID_FIELD_TYPE", "INVALID_FIELD_VALUE")),
        ({"type": "conference", "data": [1]}, "INVALID_FIELD_TYPE"),
        ({"type": "conference", "data": "x"}, "INVALID_FIELD_TYPE"),
        ({"type": "conference", "name": "n" * 256}, "FIELD_TOO_LONG"),
        ({"type": "conference", "detail": "d" * 4097}, "FIELD_TOO_LONG"),
        ({"type": "conference", "pre_flow_id": "not-a-uuid"}, "INVALID_FIELD_VALUE"),
        ({"type": "conference", "post_flow_id": "1234"}, "INVALID_FIELD_VALUE"),
        ({"type": "conference", "pre_flow_id": 5}, "INVALID_FIELD_TYPE"),
        ({"type": "conference", "pre_flow_id": str(uuid.uuid4())}, "INVALID_FLOW_ID"),
        ({"type": "conference", "post_flow_id": str(uuid.uuid4())}, "INVALID_FLOW_ID"),
    ]:
        err(api.post("/v1.0/conferences", body), 400, "INVALID_ARGUMENT", reason)
    # limits inclusive
    c = ok(api.post("/v1.0/conferences", {"type": "conference", "name": "n" * 255, "detail": "d" * 4096,
                                          "timeout": 31536000}))
    assert len(c["name"]) == 255 and len(c["detail"]) == 4096 and c["timeout"] == 31536000
    # explicit nil flow ids are "unset", not an unknown flow
    c = ok(api.post("/v1.0/conferences", {"type": "conference", "pre_flow_id": NIL_UUID,
                                          "post_flow_id": NIL_UUID}))
    assert c["pre_flow_id"] == NIL_UUID
    # utf-8 name survives
    c = ok(api.post("/v1.0/conferences", {"type": "conference", "name": "Größe 会議 \U0001F600"}))
    assert ok(api.get(f"/v1.0/conferences/{c['id']}"))["name"] == "Größe 会議 \U0001F600"


def test_get_upper_case_id(server, customer):
    c = customer.create_conference()
    got = ok(customer.api.get(f"/v1.0/conferences/{c['id'].upper()}"))
    assert got["id"] == c["id"]
    ok(customer.api.put(f"/v1.0/conferences/{c['id'].upper()}", {"name": "upper"}))
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))["name"] == "upper"


def test_list_contains_created(server, customer):
    ids = [customer.create_conference(name=f"c{i}")["id"] for i in range(3)]
    items = list_all(customer.api, "/v1.0/conferences")
    assert [x["id"] for x in items] == list(reversed(ids))
    for x in items:
        check_conference(x, customer.id)
    body = ok(customer.api.get("/v1.0/conferences"))
    assert set(body) >= {"result", "next_page_token"}
    assert body["next_page_token"] == items[-1]["tm_create"]


def test_put_partial_update(server, customer):
    c = customer.create_conference(name="n0", detail="d0", data={"a": 1}, timeout=0)
    time.sleep(0.002)
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "n1"}))
    check_conference(u, customer.id)
    assert u["name"] == "n1" and u["detail"] == "d0" and u["data"] == {"a": 1} and u["timeout"] == 0
    assert u["status"] == "progressing" and u["direct_hash"] == c["direct_hash"]
    assert u["tm_create"] == c["tm_create"]
    assert parse_ts(u["tm_update"]) > parse_ts(c["tm_update"])
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"detail": "d1", "data": {"b": [True]},
                                                             "timeout": 600}))
    assert u["name"] == "n1" and u["detail"] == "d1" and u["data"] == {"b": [True]} and u["timeout"] == 600
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {}))
    assert u["name"] == "n1" and u["detail"] == "d1" and u["timeout"] == 600
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": None, "timeout": None, "whatever": 1}))
    assert u["name"] == "n1" and u["timeout"] == 600
    u = ok(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "", "data": {}}))
    assert u["name"] == "" and u["data"] == {}
    got = ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))
    assert got == u


def test_put_cannot_change_type_or_status(server, customer):
    c = customer.create_conference()
    # another type is refused, not silently ignored; the same type back (a whole-object PUT) is fine
    e = err(customer.api.put(f"/v1.0/conferences/{c['id']}", {"type": "connect", "name": "x"}), 400,
            "INVALID_ARGUMENT", "IMMUTABLE_FIELD")
    assert "type" in e["message"]
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))["name"] == c["name"]
    r = customer.api.put(f"/v1.0/conferences/{c['id']}", {"type": "conference", "status": "terminated",
                                                         "direct_hash": "direct.aaaaaaaaaaaa",
                                                         "customer_id": str(uuid.uuid4())})
    assert r.status == 200, r
    got = ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))
    assert got["type"] == "conference" and got["status"] == "progressing"
    assert got["direct_hash"] == c["direct_hash"] and got["customer_id"] == customer.id


@pytest.mark.parametrize("body,reason", [
    ({"timeout": -5}, "INVALID_FIELD_VALUE"),
    ({"timeout": 31536001}, "INVALID_FIELD_VALUE"),
    ({"timeout": "5"}, "INVALID_FIELD_TYPE"),
    ({"name": 5}, "INVALID_FIELD_TYPE"),
    ({"detail": True}, "INVALID_FIELD_TYPE"),
    ({"data": [1]}, "INVALID_FIELD_TYPE"),
    ({"name": "n" * 256}, "FIELD_TOO_LONG"),
    ({"detail": "d" * 4097}, "FIELD_TOO_LONG"),
    ({"pre_flow_id": str(uuid.uuid4())}, "INVALID_FLOW_ID"),
    ({"post_flow_id": str(uuid.uuid4())}, "INVALID_FLOW_ID"),
    ({"pre_flow_id": "xyz"}, "INVALID_FIELD_VALUE"),
])
def test_put_validation(server, customer, body, reason):
    c = customer.create_conference(name="keep")
    err(customer.api.put(f"/v1.0/conferences/{c['id']}", body), 400, "INVALID_ARGUMENT", reason)
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}")) == c


def test_delete_empty_conference(server, customer):
    c = customer.create_conference(name="to delete")
    d = ok(customer.api.delete(f"/v1.0/conferences/{c['id']}"))
    check_conference(d, customer.id)
    assert d["id"] == c["id"]
    assert d["status"] == "terminated"
    assert d["tm_delete"] != TM_NEVER and d["tm_end"] is not None
    assert parse_ts(d["tm_delete"]) >= parse_ts(c["tm_create"])
    assert parse_ts(d["tm_end"]) >= parse_ts(c["tm_create"])
    assert d["conferencecall_ids"] == []

    got = ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))
    assert got["status"] == "terminated" and got["tm_delete"] == d["tm_delete"] and got["tm_end"] == d["tm_end"]

    d2 = ok(customer.api.delete(f"/v1.0/conferences/{c['id']}"))
    assert d2["status"] == "terminated"
    assert d2["tm_delete"] == d["tm_delete"] and d2["tm_end"] == d["tm_end"]

    assert c["id"] not in [x["id"] for x in list_all(customer.api, "/v1.0/conferences")]

    err(customer.api.put(f"/v1.0/conferences/{c['id']}", {"name": "x"}), 409, "FAILED_PRECONDITION",
        "STATE_INVALID")
    err(customer.api.post(f"/v1.0/conferences/{c['id']}/direct-hash-regenerate"), 409, "FAILED_PRECONDITION",
        "STATE_INVALID")
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))["name"] == "to delete"


def test_direct_hash_regenerate(server, customer):
    c = customer.create_conference()
    seen = {c["direct_hash"]}
    cur = c
    for _ in range(3):
        r = ok(customer.api.post(f"/v1.0/conferences/{c['id']}/direct-hash-regenerate"))
        check_conference(r, customer.id)
        assert r["id"] == c["id"]
        assert DIRECT_HASH_RE.match(r["direct_hash"]), r
        assert r["direct_hash"] not in seen
        assert r["status"] == "progressing"
        seen.add(r["direct_hash"])
        cur = r
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))["direct_hash"] == cur["direct_hash"]
    # with an (ignored) body as well
    r = ok(customer.api.post(f"/v1.0/conferences/{c['id']}/direct-hash-regenerate", {}))
    assert r["direct_hash"] not in seen


def test_direct_hashes_unique(server, customer):
    hashes = [customer.create_conference()["direct_hash"] for _ in range(15)]
    assert len(set(hashes)) == len(hashes)
    for h in hashes:
        assert DIRECT_HASH_RE.match(h)


def test_other_customers_conference_is_invisible(server, customer, other_customer):
    c = customer.create_conference(name="mine")
    b = other_customer.api
    cid = c["id"]
    for r in (b.get(f"/v1.0/conferences/{cid}"),
              b.put(f"/v1.0/conferences/{cid}", {"name": "stolen"}),
              b.delete(f"/v1.0/conferences/{cid}"),
              b.post(f"/v1.0/conferences/{cid}/direct-hash-regenerate"),
              b.post(f"/v1.0/conferences/{cid}/recording_start", {}),
              b.post(f"/v1.0/conferences/{cid}/recording_stop"),
              b.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "en-US"}),
              b.post(f"/v1.0/conferences/{cid}/transcribe_stop")):
        err(r, 404, "NOT_FOUND", "CONFERENCE_NOT_FOUND")
    assert cid not in [x["id"] for x in list_all(b, "/v1.0/conferences")]
    assert ok(customer.api.get(f"/v1.0/conferences/{cid}")) == c


def test_unknown_and_bad_ids(server, customer):
    api = customer.api
    c_id = customer.create_conference()["id"]  # an existing id followed by junk is still not a UUID
    u = str(uuid.uuid4())
    for r in (api.get(f"/v1.0/conferences/{u}"), api.put(f"/v1.0/conferences/{u}", {"name": "x"}),
              api.delete(f"/v1.0/conferences/{u}"), api.post(f"/v1.0/conferences/{u}/direct-hash-regenerate"),
              api.get(f"/v1.0/conferences/{NIL_UUID}")):
        err(r, 404, "NOT_FOUND", "CONFERENCE_NOT_FOUND")
    for bad in ("abc", "1234", str(uuid.uuid4()).replace("-", ""), str(uuid.uuid4()) + "0", c_id + "%00x",
                "{" + str(uuid.uuid4()) + "}", "g" * 8 + "-0000-4000-8000-" + "0" * 12, "%20" + str(uuid.uuid4()),
                "%00", "%00abc", str(uuid.uuid4()) + "%00"):
        # a %00 is refused before routing: decoding would cut the id short
        reason = "INVALID_URI" if "%00" in bad else "INVALID_ID"
        err(api.get(f"/v1.0/conferences/{bad}"), 400, "INVALID_ARGUMENT", reason)
        err(api.put(f"/v1.0/conferences/{bad}", {"name": "x"}), 400, "INVALID_ARGUMENT", reason)
        err(api.delete(f"/v1.0/conferences/{bad}"), 400, "INVALID_ARGUMENT", reason)
        err(api.post(f"/v1.0/conferences/{bad}/direct-hash-regenerate"), 400, "INVALID_ARGUMENT", reason)


@pytest.mark.parametrize("action", RECORDING)
def test_recording_endpoint_errors(server, customer, action):
    c = customer.create_conference()
    err(customer.api.post(f"/v1.0/conferences/{uuid.uuid4()}/{action}", {}), 404, "NOT_FOUND",
        "CONFERENCE_NOT_FOUND")
    err(customer.api.post(f"/v1.0/conferences/nope/{action}", {}), 400, "INVALID_ARGUMENT", "INVALID_ID")
    err(server.api().post(f"/v1.0/conferences/{c['id']}/{action}", {}), 401, "UNAUTHENTICATED",
        "AUTHENTICATION_REQUIRED")
    err(customer.api.post(f"/v1.0/conferences/{c['id']}/{action}", b"{"), 400, "INVALID_ARGUMENT",
        "INVALID_JSON_BODY") if action == "recording_start" else None
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}")) == c


@pytest.mark.parametrize("action", TRANSCRIBE)
def test_transcribe_endpoint_errors(server, customer, action):
    c = customer.create_conference()
    body = {"language": "en-US"} if action == "transcribe_start" else {}
    err(customer.api.post(f"/v1.0/conferences/{uuid.uuid4()}/{action}", body), 404, "NOT_FOUND",
        "CONFERENCE_NOT_FOUND")
    err(customer.api.post(f"/v1.0/conferences/nope/{action}", body), 400, "INVALID_ARGUMENT", "INVALID_ID")
    err(server.api().post(f"/v1.0/conferences/{c['id']}/{action}", body), 401, "UNAUTHENTICATED",
        "AUTHENTICATION_REQUIRED")
    if action == "transcribe_start":
        err(customer.api.post(f"/v1.0/conferences/{c['id']}/{action}", b"{"), 400, "INVALID_ARGUMENT",
            "INVALID_JSON_BODY")
        err(customer.api.post(f"/v1.0/conferences/{c['id']}/{action}", {}), 400, "INVALID_ARGUMENT",
            "INVALID_LANGUAGE")
    else:
        err(customer.api.post(f"/v1.0/conferences/{c['id']}/{action}"), 409, "FAILED_PRECONDITION",
            "STATE_INVALID")
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}")) == c


def test_conferencecalls_empty(server, customer):
    c = customer.create_conference()
    for q in (None, {"conference_id": c["id"]}, {"conference_id": str(uuid.uuid4())},
              {"conference_id": c["id"].upper()}, {"page_size": 10}):
        assert ok(customer.api.get("/v1.0/conferencecalls", query=q)) == {"result": [], "next_page_token": ""}
    for bad in ("x", "1234", ""):
        r = customer.api.get("/v1.0/conferencecalls", query={"conference_id": bad})
        if bad == "" and r.status == 200:
            continue  # an empty filter may be read as "no filter"
        err(r, 400, "INVALID_ARGUMENT")
    u = str(uuid.uuid4())
    err(customer.api.get(f"/v1.0/conferencecalls/{u}"), 404, "NOT_FOUND", "CONFERENCECALL_NOT_FOUND")
    err(customer.api.delete(f"/v1.0/conferencecalls/{u}"), 404, "NOT_FOUND", "CONFERENCECALL_NOT_FOUND")
    err(customer.api.get("/v1.0/conferencecalls/bad-id"), 400, "INVALID_ARGUMENT", "INVALID_ID")
    err(customer.api.delete("/v1.0/conferencecalls/bad-id"), 400, "INVALID_ARGUMENT", "INVALID_ID")
    err(server.api().get("/v1.0/conferencecalls"), 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")


def test_keep_alive_connection(server, customer):
    """Several requests (including errors) on one persistent HTTP/1.1 connection, like curl/browsers do."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        hdrs = {"Authorization": f"Bearer {customer.token}", "Content-Type": "application/json"}
        conn.request("POST", "/v1.0/conferences", body=json.dumps({"type": "conference", "name": "ka"}),
                     headers=hdrs)
        r = conn.getresponse()
        c = json.loads(r.read())
        assert r.status == 200 and c["name"] == "ka"
        conn.request("GET", f"/v1.0/conferences/{uuid.uuid4()}", headers=hdrs)
        r = conn.getresponse()
        assert r.status == 404 and json.loads(r.read())["error"]["reason"] == "CONFERENCE_NOT_FOUND"
        conn.request("POST", "/v1.0/conferences", body="{bad", headers=hdrs)
        r = conn.getresponse()
        assert r.status == 400 and json.loads(r.read())["error"]["reason"] == "INVALID_JSON_BODY"
        conn.request("PUT", f"/v1.0/conferences/{c['id']}", body=json.dumps({"name": "ka2"}), headers=hdrs)
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["name"] == "ka2"
        conn.request("GET", f"/v1.0/conferences/{c['id']}", headers=hdrs)
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["name"] == "ka2"
    finally:
        conn.close()
