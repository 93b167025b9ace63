"""Login, credential transports, bad and tampered credentials."""

import hashlib
import hmac
import json
import time

import pytest

from conftest import ADMIN_USERNAME, b64url, b64url_decode, err, ok


def _jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


@pytest.mark.parametrize("path", ["/auth/login", "/v1.0/auth/login"])
def test_login_returns_hs256_jwt(server, customer, path):
    body = ok(server.api().post(path, {"username": customer.username, "password": customer.password}))
    assert body["username"] == customer.username
    header, payload, sig = _jwt_parts(body["token"])
    assert header.get("alg") == "HS256", header
    assert isinstance(payload, dict)
    assert sig
    assert isinstance(payload.get("exp"), int), payload
    assert abs(payload["exp"] - time.time() - 7 * 86400) < 300, "JWT lifetime is 7 days"
    assert customer.password not in json.dumps(body)
    # the token works
    me = ok(server.api(body["token"]).get("/v1.0/customer"))
    assert me["id"] == customer.id


def test_operator_login(server):
    tok = server.login(ADMIN_USERNAME, server.admin_password)
    assert ok(server.api(tok).get("/v1.0/customer"))["id"]


@pytest.mark.parametrize("path", ["/auth/login", "/v1.0/auth/login"])
def test_login_wrong_password_and_unknown_user(server, customer, path):
    a = server.api()
    err(a.post(path, {"username": customer.username, "password": customer.password + "x"}),
        401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(a.post(path, {"username": "nobody-" + customer.username, "password": customer.password}),
        401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_login_empty_password_rejected(server, customer):
    r = server.api().post("/auth/login", {"username": customer.username, "password": ""})
    assert r.status in (400, 401), r
    err(r, r.status)


@pytest.mark.parametrize("body,reason", [
    ({"username": "x@example.com"}, "MISSING_FIELD"),
    ({"password": "whatever-123"}, "MISSING_FIELD"),
    ({}, "MISSING_FIELD"),
    ({"username": 5, "password": "whatever-123"}, "INVALID_FIELD_TYPE"),
    ({"username": "x@example.com", "password": ["a"]}, "INVALID_FIELD_TYPE"),
    ("{not json", "INVALID_JSON_BODY"),
    ("[]", "INVALID_JSON_BODY"),
])
def test_login_bad_bodies(server, body, reason):
    err(server.api().post("/auth/login", body), 400, "INVALID_ARGUMENT", reason)


def test_missing_field_message_names_field(server):
    e = err(server.api().post("/auth/login", {"username": "x@example.com"}), 400, "INVALID_ARGUMENT",
            "MISSING_FIELD")
    assert "password" in e["message"].lower(), e


@pytest.mark.parametrize("path", ["/v1.0/conferences", "/v1.0/customer", "/v1.0/agents", "/v1.0/accesskeys",
                                  "/v1.0/conferencecalls", "/v1.0/customers"])
def test_missing_credentials(server, path):
    err(server.api().get(path), 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")


def test_credential_transports(server, customer):
    key = customer.create_accesskey()["token"]
    for tok, mode in [(customer.token, "bearer"), (customer.token, "token"), (key, "bearer"), (key, "token"),
                      (key, "accesskey")]:
        me = ok(server.api(tok, mode).get("/v1.0/customer"))
        assert me["id"] == customer.id, (mode, me)
        ok(server.api(tok, mode).get("/v1.0/conferences"))


@pytest.mark.parametrize("headers,query", [
    ([("Authorization", "Bearer garbage")], None),
    ([("Authorization", "Bearer a.b.c")], None),
    ([("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA")], None),
    ([("Authorization", "Bearer cf_0000000000000000000000000000")], None),
    (None, {"token": "garbage"}),
    (None, {"token": "cf_nonexistentkey000000000000"}),
    (None, {"accesskey": "cf_nonexistentkey000000000000"}),
    (None, {"accesskey": "garbage"}),
])
def test_invalid_credentials(server, headers, query):
    err(server.api().get("/v1.0/conferences", headers=headers, query=query), 401, "UNAUTHENTICATED",
        "INVALID_CREDENTIALS")


@pytest.mark.parametrize("value", [
    "", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "bearer", "Token abc", "Bearer  " + "x" * 8000,
    b"Bearer \xff\xfe\xfd", "Bearer a b c", "Bearer " + "." * 50,
])
def test_garbage_authorization_header(server, value):
    r = server.api().get("/v1.0/conferences", headers=[("Authorization", value)])
    assert r.status in (400, 401), r
    err(r, r.status)


def test_control_chars_in_authorization_header(server):
    # may be refused by the HTTP layer itself; it must only not be a 5xx / crash
    r = server.api().get("/v1.0/conferences", headers=[("Authorization", "Bearer \x01\x02\x7f")])
    assert 400 <= r.status < 500, r
    ok(server.api(server.operator_token()).get("/v1.0/customer"))


def test_jwt_tampering(server, customer):
    h, p, s = customer.token.split(".")
    api = server.api()
    payload = json.loads(b64url_decode(p))

    def check(tok, what):
        err(api.get("/v1.0/customer", token=tok, mode="bearer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        err(api.get("/v1.0/customer", token=tok, mode="token"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

    # flip a byte of the signature
    sig = bytearray(b64url_decode(s))
    sig[5] ^= 0x41
    check(f"{h}.{p}.{b64url(bytes(sig))}", "signature")
    # change the payload, keep the signature
    p2 = dict(payload)
    p2["e2e"] = "tampered"
    check(f"{h}.{b64url(json.dumps(p2).encode())}.{s}", "payload")
    # alg none
    hn = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    check(f"{hn}.{p}.", "alg none")
    # same claims, signed with another secret
    hh = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    forged_sig = hmac.new(b"not-the-secret", f"{hh}.{p}".encode(), hashlib.sha256).digest()
    check(f"{hh}.{p}.{b64url(forged_sig)}", "other secret")
    # truncated
    check(customer.token[:-3], "truncated")
    # the original still works
    ok(api.get("/v1.0/customer", token=customer.token))


def test_wrong_customer_claim_rejected(server, customer, other_customer):
    """A token whose payload was swapped to another customer's payload fails."""
    h, p, s = customer.token.split(".")
    _, p_other, _ = other_customer.token.split(".")
    err(server.api(f"{h}.{p_other}.{s}").get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_login_method_not_allowed(server):
    err(server.api().get("/auth/login"), 405, "METHOD_NOT_ALLOWED")
