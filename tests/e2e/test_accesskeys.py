"""Access keys: create (secret shown once), read, update, delete, expiry, isolation."""

import time
import uuid

import pytest

from conftest import TM_NEVER, check_accesskey, err, list_all, ok, parse_ts, wait_until


def test_create_never_expiring(server, customer):
    k = ok(customer.api.post("/v1.0/accesskeys", {"name": "ci", "detail": "for ci"}))
    check_accesskey(k)
    assert k["customer_id"] == customer.id
    assert k["name"] == "ci" and k["detail"] == "for ci"
    assert isinstance(k["token"], str) and k["token"].startswith("cf_") and len(k["token"]) > 11, k
    assert k["token_prefix"] == k["token"][:11]
    assert k["tm_expire"] == TM_NEVER
    assert k["tm_delete"] == TM_NEVER
    assert k["tm_update"] == k["tm_create"]

    k0 = ok(customer.api.post("/v1.0/accesskeys", {"name": "zero", "expire": 0}))
    assert k0["tm_expire"] == TM_NEVER
    kn = ok(customer.api.post("/v1.0/accesskeys", {"name": "null", "expire": None, "detail": None}))
    assert kn["tm_expire"] == TM_NEVER and kn["detail"] == ""
    assert k0["token"] != k["token"]

    # token shown only once
    got = customer.api.get(f"/v1.0/accesskeys/{k['id']}")
    body = ok(got)
    check_accesskey(body)
    assert k["token"] not in got.text
    assert body["token_prefix"] == k["token_prefix"]
    assert body["name"] == "ci"
    lst = customer.api.get("/v1.0/accesskeys")
    ok(lst)
    assert k["token"] not in lst.text and k0["token"] not in lst.text
    items = list_all(customer.api, "/v1.0/accesskeys")
    assert {k["id"], k0["id"]} <= {x["id"] for x in items}
    for x in items:
        check_accesskey(x)
        assert x["customer_id"] == customer.id

    # it authenticates as the customer in every transport
    for mode in ("accesskey", "token", "bearer"):
        assert ok(server.api(k["token"], mode).get("/v1.0/customer"))["id"] == customer.id


def test_expire_sets_tm_expire(server, customer):
    k = ok(customer.api.post("/v1.0/accesskeys", {"name": "hour", "expire": 3600}))
    delta = parse_ts(k["tm_expire"]) - parse_ts(k["tm_create"])
    assert abs(delta.total_seconds() - 3600) < 5, k
    ok(server.api(k["token"], "accesskey").get("/v1.0/conferences"))


def test_short_expiry(server, customer):
    k = ok(customer.api.post("/v1.0/accesskeys", {"name": "short", "expire": 1}))
    delta = parse_ts(k["tm_expire"]) - parse_ts(k["tm_create"])
    assert abs(delta.total_seconds() - 1) < 1.5, k
    api = server.api(k["token"], "accesskey")
    wait_until(lambda: api.get("/v1.0/customer").status == 401, timeout=4, interval=0.2,
               what="expired access key refused")
    err(api.get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(server.api(k["token"], "bearer").get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_update(server, customer):
    k = customer.create_accesskey(name="n0", detail="d0")
    time.sleep(0.002)
    u = ok(customer.api.put(f"/v1.0/accesskeys/{k['id']}", {"name": "n1"}))
    check_accesskey(u)
    assert u["name"] == "n1" and u["detail"] == "d0"
    assert parse_ts(u["tm_update"]) > parse_ts(k["tm_update"])
    assert k["token"] not in str(u)
    u = ok(customer.api.put(f"/v1.0/accesskeys/{k['id']}", {"detail": "d1", "junk": 1}))
    assert u["name"] == "n1" and u["detail"] == "d1"
    got = ok(customer.api.get(f"/v1.0/accesskeys/{k['id']}"))
    assert got["name"] == "n1" and got["detail"] == "d1" and got["tm_expire"] == k["tm_expire"]
    # still works
    ok(server.api(k["token"], "accesskey").get("/v1.0/customer"))


def test_delete(server, customer):
    k = customer.create_accesskey()
    api = server.api(k["token"], "accesskey")
    ok(api.get("/v1.0/customer"))
    d = ok(customer.api.delete(f"/v1.0/accesskeys/{k['id']}"))
    check_accesskey(d)
    assert d["id"] == k["id"]
    assert d["tm_delete"] != TM_NEVER
    assert k["token"] not in str(d)
    err(api.get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(server.api(k["token"], "bearer").get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(customer.api.get(f"/v1.0/accesskeys/{k['id']}"), 404, "NOT_FOUND", "ACCESSKEY_NOT_FOUND")
    err(customer.api.put(f"/v1.0/accesskeys/{k['id']}", {"name": "x"}), 404, "NOT_FOUND", "ACCESSKEY_NOT_FOUND")
    assert k["id"] not in [x["id"] for x in list_all(customer.api, "/v1.0/accesskeys")]


@pytest.mark.parametrize("body,reason", [
    ({"expire": -1}, "INVALID_FIELD_VALUE"),
    ({"expire": "10"}, "INVALID_FIELD_TYPE"),
    ({"expire": 1.5}, ("INVALID_FIELD_TYPE", "INVALID_FIELD_VALUE")),
    ({"expire": True}, "INVALID_FIELD_TYPE"),
    ({"name": 1}, "INVALID_FIELD_TYPE"),
    ({"detail": []}, "INVALID_FIELD_TYPE"),
    ({"name": "n" * 256}, "FIELD_TOO_LONG"),
    ({"detail": "d" * 4097}, "FIELD_TOO_LONG"),
])
def test_create_validation(server, customer, body, reason):
    err(customer.api.post("/v1.0/accesskeys", body), 400, "INVALID_ARGUMENT", reason)


def test_isolation(server, customer, other_customer):
    k = customer.create_accesskey()
    b = other_customer.api
    for r in (b.get(f"/v1.0/accesskeys/{k['id']}"), b.put(f"/v1.0/accesskeys/{k['id']}", {"name": "x"}),
              b.delete(f"/v1.0/accesskeys/{k['id']}")):
        err(r, 404, "NOT_FOUND", "ACCESSKEY_NOT_FOUND")
    assert k["id"] not in [x["id"] for x in list_all(b, "/v1.0/accesskeys")]
    ok(server.api(k["token"], "accesskey").get("/v1.0/customer"))
    # a key of A cannot see B's conference
    conf_b = other_customer.create_conference()
    err(server.api(k["token"], "accesskey").get(f"/v1.0/conferences/{conf_b['id']}"), 404, "NOT_FOUND",
        "CONFERENCE_NOT_FOUND")


def test_accesskey_manages_conferences(server, customer):
    k = customer.create_accesskey()
    api = server.api(k["token"], "accesskey")
    c = ok(api.post("/v1.0/conferences", {"type": "conference", "name": "via key"}))
    assert c["customer_id"] == customer.id
    assert ok(customer.api.get(f"/v1.0/conferences/{c['id']}"))["name"] == "via key"


def test_lookup_errors(server, customer):
    err(customer.api.get(f"/v1.0/accesskeys/{uuid.uuid4()}"), 404, "NOT_FOUND", "ACCESSKEY_NOT_FOUND")
    err(customer.api.delete(f"/v1.0/accesskeys/{uuid.uuid4()}"), 404, "NOT_FOUND", "ACCESSKEY_NOT_FOUND")
    err(customer.api.get("/v1.0/accesskeys/zzz"), 400, "INVALID_ARGUMENT", "INVALID_ID")
    k = customer.create_accesskey()
    assert ok(customer.api.get(f"/v1.0/accesskeys/{k['id'].upper()}"))["id"] == k["id"]
