"""Operator-managed customers, own customer (GET/PUT /v1.0/customer), agents."""

import time
import uuid

import pytest
import websocket

from conftest import (NIL_UUID, TM_NEVER, check_agent, check_customer, err, list_all, ok, parse_ts,
                      unique, ws_connect)


# ------------------------------------------------------------------------------------------- customers

def test_operator_creates_customer(server):
    op = server.operator()
    username = f"{unique('adm')}@example.com"
    c = ok(op.post("/v1.0/customers", {"name": "Acme", "detail": "acme detail", "username": username,
                                       "password": "secret-pass-1"}))
    check_customer(c)
    assert c["name"] == "Acme" and c["detail"] == "acme detail"
    assert c["tm_delete"] == TM_NEVER
    assert c["tm_update"] == c["tm_create"]
    assert c["webhook_uri"] == "" and c["webhook_method"] == "POST", c
    assert "secret-pass-1" not in str(c)

    tok = server.login(username, "secret-pass-1")
    me = ok(server.api(tok).get("/v1.0/customer"))
    check_customer(me)
    assert me["id"] == c["id"] and me["name"] == "Acme" and me["detail"] == "acme detail"

    got = ok(op.get(f"/v1.0/customers/{c['id']}"))
    assert got["id"] == c["id"] and got["name"] == "Acme"
    got = ok(op.get(f"/v1.0/customers/{c['id'].upper()}"))
    assert got["id"] == c["id"]

    ids = [x["id"] for x in list_all(op, "/v1.0/customers")]
    assert c["id"] in ids
    assert len(ids) == len(set(ids))

    # the new customer's admin is an agent of that customer
    agents = list_all(server.api(tok), "/v1.0/agents")
    assert [a["username"] for a in agents] == [username]
    check_agent(agents[0])
    assert agents[0]["customer_id"] == c["id"]


def test_customer_lookup_errors(server):
    op = server.operator()
    err(op.get(f"/v1.0/customers/{uuid.uuid4()}"), 404, "NOT_FOUND", "CUSTOMER_NOT_FOUND")
    err(op.get("/v1.0/customers/not-a-uuid"), 400, "INVALID_ARGUMENT", "INVALID_ID")


def test_non_operator_is_denied(server, customer):
    k = customer.create_accesskey()["token"]
    op_key = server.operator().post("/v1.0/accesskeys", {"name": "op-key"})
    op_key = ok(op_key)["token"]
    body = {"name": "x", "username": f"{unique('adm')}@example.com", "password": "secret-pass-1"}
    for api in (customer.api, server.api(k), server.api(op_key)):
        err(api.post("/v1.0/customers", body), 403, "PERMISSION_DENIED")
        err(api.get("/v1.0/customers"), 403, "PERMISSION_DENIED")
        err(api.get(f"/v1.0/customers/{customer.id}"), 403, "PERMISSION_DENIED")
    # nothing was created
    err(server.api().post("/auth/login", {"username": body["username"], "password": body["password"]}),
        401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_customer_create_validation(server, customer):
    op = server.operator()
    base = lambda: {"name": "n", "detail": "d", "username": f"{unique('adm')}@example.com",  # noqa: E731
                    "password": "secret-pass-1"}
    b = base()
    del b["username"]
    err(op.post("/v1.0/customers", b), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    b = base()
    del b["password"]
    err(op.post("/v1.0/customers", b), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    b = base()
    b["password"] = "short77"
    err(op.post("/v1.0/customers", b), 400, "INVALID_ARGUMENT", "INVALID_FIELD_VALUE")
    b = base()
    b["password"] = "exactly8"
    ok(op.post("/v1.0/customers", b))
    b = base()
    b["name"] = "n" * 256
    err(op.post("/v1.0/customers", b), 400, "INVALID_ARGUMENT", "FIELD_TOO_LONG")
    b = base()
    b["detail"] = "d" * 4097
    err(op.post("/v1.0/customers", b), 400, "INVALID_ARGUMENT", "FIELD_TOO_LONG")
    b = base()
    b["name"] = "n" * 255
    b["detail"] = "d" * 4096
    c = ok(op.post("/v1.0/customers", b))
    assert len(c["name"]) == 255 and len(c["detail"]) == 4096
    # duplicate username (an existing customer admin)
    b = base()
    b["username"] = customer.username
    err(op.post("/v1.0/customers", b), 409, "ALREADY_EXISTS", "USERNAME_TAKEN")
    # the operator's own username
    b = base()
    b["username"] = "admin@example.com"
    err(op.post("/v1.0/customers", b), 409, "ALREADY_EXISTS", "USERNAME_TAKEN")


def test_put_own_customer_partial_update(server, customer):
    api = customer.api
    before = ok(api.get("/v1.0/customer"))
    time.sleep(0.002)
    after = ok(api.put("/v1.0/customer", {"name": "renamed"}))
    check_customer(after)
    assert after["id"] == customer.id
    assert after["name"] == "renamed"
    assert after["detail"] == before["detail"]
    assert after["webhook_uri"] == before["webhook_uri"]
    assert after["tm_create"] == before["tm_create"]
    assert parse_ts(after["tm_update"]) > parse_ts(before["tm_update"])
    got = ok(api.get("/v1.0/customer"))
    assert got["name"] == "renamed" and got["detail"] == before["detail"]

    after = ok(api.put("/v1.0/customer", {"detail": "new detail", "unknown_field": [1, 2]}))
    assert after["name"] == "renamed" and after["detail"] == "new detail"

    for m in ("POST", "GET", "PUT", "DELETE", ""):
        after = ok(api.put("/v1.0/customer", {"webhook_method": m}))
        assert after["webhook_method"] == (m or "POST")  # "" is the default, which is POST
    for uri in ("https://example.com/hook?x=1", "http://127.0.0.1:9/x", ""):
        after = ok(api.put("/v1.0/customer", {"webhook_uri": uri}))
        assert after["webhook_uri"] == uri
    # null = absent
    after = ok(api.put("/v1.0/customer", {"name": None, "detail": None}))
    assert after["name"] == "renamed" and after["detail"] == "new detail"


@pytest.mark.parametrize("body,reason", [
    ({"webhook_method": "PATCH"}, "INVALID_WEBHOOK_METHOD"),
    ({"webhook_method": "FOO"}, "INVALID_WEBHOOK_METHOD"),
    ({"webhook_uri": "ftp://example.com/x"}, "INVALID_WEBHOOK_URI"),
    ({"webhook_uri": "not a url"}, "INVALID_WEBHOOK_URI"),
    ({"webhook_uri": "/relative/path"}, "INVALID_WEBHOOK_URI"),
    ({"webhook_uri": "http://"}, "INVALID_WEBHOOK_URI"),
    ({"name": "n" * 256}, "FIELD_TOO_LONG"),
    ({"detail": "d" * 4097}, "FIELD_TOO_LONG"),
    ({"name": 1}, "INVALID_FIELD_TYPE"),
    ({"detail": {}}, "INVALID_FIELD_TYPE"),
    ({"webhook_method": 1}, "INVALID_FIELD_TYPE"),
    ({"webhook_uri": ["http://x"]}, "INVALID_FIELD_TYPE"),
])
def test_put_own_customer_validation(server, customer, body, reason):
    before = ok(customer.api.get("/v1.0/customer"))
    err(customer.api.put("/v1.0/customer", body), 400, "INVALID_ARGUMENT", reason)
    assert ok(customer.api.get("/v1.0/customer")) == before


# ------------------------------------------------------------------------------------------- agents

def test_agent_create_get_list(server, customer):
    a, username, password = customer.create_agent(name="Alice", detail="desk 1", ring_method="linear")
    assert a["customer_id"] == customer.id
    assert a["username"] == username and a["name"] == "Alice" and a["detail"] == "desk 1"
    assert a["ring_method"] == "linear"
    assert a["permission"] == 16
    assert a["tag_ids"] == [] and a["addresses"] == []
    assert a["tm_delete"] == TM_NEVER and a["tm_update"] == a["tm_create"]
    assert password not in str(a)

    got = ok(customer.api.get(f"/v1.0/agents/{a['id']}"))
    check_agent(got)
    assert got["id"] == a["id"] and got["username"] == username
    got = ok(customer.api.get(f"/v1.0/agents/{a['id'].upper()}"))
    assert got["id"] == a["id"]

    items = list_all(customer.api, "/v1.0/agents")
    assert {x["username"] for x in items} == {customer.username, username}
    for x in items:
        check_agent(x)

    server.login(username, password)


def test_agent_permissions(server, customer):
    plain, u1, p1 = customer.create_agent()
    assert plain["permission"] == 16
    admin, u2, p2 = customer.create_agent(permission=48)
    assert admin["permission"] == 48
    manager, u3, p3 = customer.create_agent(permission=80)
    assert manager["permission"] == 80

    t_plain = server.login(u1, p1)
    t_admin = server.login(u2, p2)
    t_manager = server.login(u3, p3)

    err(server.api(t_plain).get("/v1.0/conferences"), 403, "PERMISSION_DENIED")
    err(server.api(t_plain).post("/v1.0/conferences", {"type": "conference"}), 403, "PERMISSION_DENIED")
    err(server.api(t_plain).get("/v1.0/agents"), 403, "PERMISSION_DENIED")
    err(server.api(t_plain).post("/v1.0/agents", {"username": f"{unique('a')}@x.com", "password": "secret-pw-1"}),
        403, "PERMISSION_DENIED")
    err(server.api(t_manager).get("/v1.0/agents"), 403, "PERMISSION_DENIED")
    err(server.api(t_plain).get("/v1.0/customers"), 403, "PERMISSION_DENIED")

    ok(server.api(t_admin).get("/v1.0/conferences"))
    ok(server.api(t_admin).get("/v1.0/agents"))
    c = ok(server.api(t_admin).post("/v1.0/conferences", {"type": "conference"}))
    assert c["customer_id"] == customer.id
    err(server.api(t_admin).get("/v1.0/customers"), 403, "PERMISSION_DENIED")


def test_agent_update(server, customer):
    a, username, password = customer.create_agent(name="Bob", detail="d0")
    api = customer.api
    time.sleep(0.002)
    u = ok(api.put(f"/v1.0/agents/{a['id']}", {"name": "Bobby"}))
    check_agent(u)
    assert u["name"] == "Bobby" and u["detail"] == "d0" and u["ring_method"] == a["ring_method"]
    assert u["permission"] == 16 and u["username"] == username
    assert parse_ts(u["tm_update"]) > parse_ts(a["tm_update"])
    u = ok(api.put(f"/v1.0/agents/{a['id']}", {"detail": "d1", "ring_method": "linear", "permission": 48}))
    assert u["name"] == "Bobby" and u["detail"] == "d1" and u["ring_method"] == "linear" and u["permission"] == 48
    u = ok(api.put(f"/v1.0/agents/{a['id']}", {"ring_method": "ringall"}))
    assert u["ring_method"] == "ringall"
    got = ok(api.get(f"/v1.0/agents/{a['id']}"))
    assert got["name"] == "Bobby" and got["detail"] == "d1" and got["permission"] == 48

    # password change
    ok(api.put(f"/v1.0/agents/{a['id']}", {"password": "brand-new-password"}))
    err(server.api().post("/auth/login", {"username": username, "password": password}), 401, "UNAUTHENTICATED",
        "INVALID_CREDENTIALS")
    server.login(username, "brand-new-password")


@pytest.mark.parametrize("body,reason", [
    ({"ring_method": "foo"}, "INVALID_FIELD_VALUE"),
    ({"ring_method": 1}, "INVALID_FIELD_TYPE"),
    ({"permission": "16"}, "INVALID_FIELD_TYPE"),
    ({"permission": -16}, "INVALID_FIELD_VALUE"),
    ({"permission": 1}, "INVALID_FIELD_VALUE"),
    ({"permission": 128}, "INVALID_FIELD_VALUE"),
    ({"password": "short"}, "INVALID_FIELD_VALUE"),
    ({"password": 12345678}, "INVALID_FIELD_TYPE"),
    ({"name": "n" * 256}, "FIELD_TOO_LONG"),
    ({"detail": "d" * 4097}, "FIELD_TOO_LONG"),
    ({"name": False}, "INVALID_FIELD_TYPE"),
])
def test_agent_update_validation(server, customer, body, reason):
    a, _, _ = customer.create_agent()
    err(customer.api.put(f"/v1.0/agents/{a['id']}", body), 400, "INVALID_ARGUMENT", reason)
    assert ok(customer.api.get(f"/v1.0/agents/{a['id']}"))["tm_update"] == a["tm_update"]


def test_agent_create_validation(server, customer):
    api = customer.api
    base = lambda: {"username": f"{unique('ag')}@example.com", "password": "secret-pw-1"}  # noqa: E731
    b = base()
    del b["username"]
    err(api.post("/v1.0/agents", b), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    b = base()
    del b["password"]
    err(api.post("/v1.0/agents", b), 400, "INVALID_ARGUMENT", "MISSING_FIELD")
    for k, v, reason in [("password", "1234567", "INVALID_FIELD_VALUE"),
                         ("ring_method", "random", "INVALID_FIELD_VALUE"),
                         ("permission", 3, "INVALID_FIELD_VALUE"),
                         ("permission", 16.5, ("INVALID_FIELD_TYPE", "INVALID_FIELD_VALUE")),
                         ("username", 7, "INVALID_FIELD_TYPE"),
                         ("username", "", ("INVALID_FIELD_VALUE", "MISSING_FIELD")),
                         ("name", "x" * 256, "FIELD_TOO_LONG")]:
        b = base()
        b[k] = v
        err(api.post("/v1.0/agents", b), 400, "INVALID_ARGUMENT", reason)
    # duplicates: own admin's username, another customer's admin, the operator
    for taken in (customer.username, server.new_customer().username, "admin@example.com"):
        b = base()
        b["username"] = taken
        err(api.post("/v1.0/agents", b), 409, "ALREADY_EXISTS", "USERNAME_TAKEN")
    b = base()
    assert api.post("/v1.0/agents", b).status == 201
    err(api.post("/v1.0/agents", b), 409, "ALREADY_EXISTS", "USERNAME_TAKEN")


def test_agent_delete(server, customer):
    a, username, password = customer.create_agent(permission=48)
    tok = server.login(username, password)
    ok(server.api(tok).get("/v1.0/conferences"))
    d = ok(customer.api.delete(f"/v1.0/agents/{a['id']}"))
    assert d["id"] == a["id"]
    assert d["tm_delete"] != TM_NEVER, d
    parse_ts(d["tm_delete"])
    err(customer.api.get(f"/v1.0/agents/{a['id']}"), 404, "NOT_FOUND", "AGENT_NOT_FOUND")
    err(customer.api.put(f"/v1.0/agents/{a['id']}", {"name": "x"}), 404, "NOT_FOUND", "AGENT_NOT_FOUND")
    err(server.api(tok).get("/v1.0/conferences"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(server.api(tok, "token").get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(server.api().post("/auth/login", {"username": username, "password": password}), 401, "UNAUTHENTICATED",
        "INVALID_CREDENTIALS")
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(server, tok).close()
    assert ei.value.status_code == 401
    assert a["id"] not in [x["id"] for x in list_all(customer.api, "/v1.0/agents")]


def test_agent_delete_self_refused(server, customer):
    me = [a for a in list_all(customer.api, "/v1.0/agents") if a["username"] == customer.username][0]
    err(customer.api.delete(f"/v1.0/agents/{me['id']}"), 409, "FAILED_PRECONDITION", "STATE_INVALID")
    ok(customer.api.get("/v1.0/customer"))


def test_agents_are_per_customer(server, customer, other_customer):
    a, _, _ = customer.create_agent()
    api_b = other_customer.api
    for r in (api_b.get(f"/v1.0/agents/{a['id']}"), api_b.put(f"/v1.0/agents/{a['id']}", {"name": "x"}),
              api_b.delete(f"/v1.0/agents/{a['id']}")):
        err(r, 404, "NOT_FOUND", "AGENT_NOT_FOUND")
    assert a["id"] not in [x["id"] for x in list_all(api_b, "/v1.0/agents")]
    assert ok(customer.api.get(f"/v1.0/agents/{a['id']}"))["name"] == a["name"]


def test_agent_lookup_errors(server, customer):
    err(customer.api.get(f"/v1.0/agents/{uuid.uuid4()}"), 404, "NOT_FOUND", "AGENT_NOT_FOUND")
    err(customer.api.delete(f"/v1.0/agents/{uuid.uuid4()}"), 404, "NOT_FOUND", "AGENT_NOT_FOUND")
    err(customer.api.get("/v1.0/agents/1234"), 400, "INVALID_ARGUMENT", "INVALID_ID")
    err(customer.api.get(f"/v1.0/agents/{NIL_UUID}"), 404, "NOT_FOUND", "AGENT_NOT_FOUND")


# ------------------------------------------------------------------------------------------- issue 8

def test_agent_create_answers_201(server, customer):
    username = f"{unique('ag')}@example.com"
    r = customer.api.post("/v1.0/agents", {"username": username, "password": "secret-pw-1", "name": "n"})
    assert r.status == 201, r
    a = check_agent(r.json)
    assert a["username"] == username and a["customer_id"] == customer.id
    assert a["id"] in [x["id"] for x in list_all(customer.api, "/v1.0/agents")]


def test_webhook_method_default_shows_post(server, customer):
    assert ok(customer.api.get("/v1.0/customer"))["webhook_method"] == "POST"
    ok(customer.api.put("/v1.0/customer", {"webhook_method": "PUT"}))
    assert ok(customer.api.put("/v1.0/customer", {"webhook_method": ""}))["webhook_method"] == "POST"
    assert ok(customer.api.get("/v1.0/customer"))["webhook_method"] == "POST"


def test_customers_need_the_operator(server, customer):
    for r in (customer.api.get("/v1.0/customers"), customer.api.get(f"/v1.0/customers/{customer.id}"),
              customer.api.post("/v1.0/customers", {"name": "x", "username": f"{unique('a')}@x.com",
                                                    "password": "secret-pass-1"})):
        e = err(r, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        assert "operator" in e["message"] and "admin agent" not in e["message"], e


PRIVATE_URIS = [
    "http://127.0.0.1:9/hook", "http://localhost:8080/hook", "http://LOCALHOST./x", "http://a.localhost/x",
    "http://10.0.0.7/x", "http://192.168.1.1/x", "http://172.20.0.1/x", "http://169.254.169.254/latest",
    "http://[::1]:9000/x", "http://[fe80::1]/x", "http://[::ffff:10.0.0.1]/x", "http://127.1/x",
    "http://2130706433/x", "http://0x7f.0.0.1/x", "http://0.0.0.0/x",
]


def test_private_webhook_uri_refused(server_factory):
    srv = server_factory(webhook_allow_private=False)
    cust = srv.new_customer()
    before = ok(cust.api.get("/v1.0/customer"))
    for uri in PRIVATE_URIS:
        e = err(cust.api.put("/v1.0/customer", {"webhook_uri": uri}), 400, "INVALID_ARGUMENT",
                "WEBHOOK_URI_PRIVATE")
        assert "webhook_allow_private" in e["message"], (uri, e)
    assert ok(cust.api.get("/v1.0/customer")) == before
    # public targets (names are checked after DNS, at delivery) and clearing it stay accepted
    for ok_uri in ("https://hooks.example.com/x", "http://93.184.216.34/x", "http://localhost.example.com/",
                   ""):
        assert ok(cust.api.put("/v1.0/customer", {"webhook_uri": ok_uri}))["webhook_uri"] == ok_uri


def test_private_webhook_uri_allowed_with_the_flag(server, customer):
    # the shared server runs with --webhook-allow-private
    assert ok(customer.api.put("/v1.0/customer", {"webhook_uri": "http://127.0.0.1:9/x"}))["webhook_uri"] \
        == "http://127.0.0.1:9/x"
    ok(customer.api.put("/v1.0/customer", {"webhook_uri": ""}))


def test_password_change_ends_earlier_jwts(server, customer):
    a, username, password = customer.create_agent(permission=48)
    old = server.login(username, password)
    ok(server.api(old).get("/v1.0/conferences"))
    # other changes keep the session
    ok(customer.api.put(f"/v1.0/agents/{a['id']}", {"name": "renamed"}))
    ok(server.api(old).get("/v1.0/conferences"))
    ok(customer.api.put(f"/v1.0/agents/{a['id']}", {"password": "changed-password-1"}))
    err(server.api(old).get("/v1.0/conferences"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(server.api(old, "token").get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    # a login right after the change (same second) works
    new = server.login(username, "changed-password-1")
    ok(server.api(new).get("/v1.0/conferences"))
    # the customer's own admin session is untouched
    ok(customer.api.get("/v1.0/agents"))


def test_own_password_change_ends_own_jwt(server, customer):
    a, username, password = customer.create_agent(permission=32)
    tok = server.login(username, password)
    api = server.api(tok)
    ok(api.put(f"/v1.0/agents/{a['id']}", {"password": "my-new-password"}))
    err(api.get("/v1.0/agents"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    ok(server.api(server.login(username, "my-new-password")).get("/v1.0/agents"))
