"""Login, credential transports, bad and tampered credentials."""

import hashlib
import hmac
import json
import time

import pytest

from conftest import ADMIN_USERNAME, b64url, b64url_decode, err, ok, unique, wait_until


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


# ------------------------------------------------------------------------------------------- issue 8

def _login(srv, username, password, source):
    return srv.api().post("/auth/login", {"username": username, "password": password}, source=source)


def test_failed_logins_throttled_per_username_and_address(server_factory):
    srv = server_factory()
    alice = srv.new_customer()
    bob = srv.new_customer()
    for i in range(10):
        err(_login(srv, alice.username, f"wrong-password-{i}", "127.0.0.2"), 401, "UNAUTHENTICATED",
            "INVALID_CREDENTIALS")
    # beyond the budget: refused before any password check, with when to come back
    r = _login(srv, alice.username, "wrong-password-x", "127.0.0.2")
    e = err(r, 429, "RESOURCE_EXHAUSTED", "TOO_MANY_FAILED_LOGINS")
    assert "login_failures_per_minute=10" in e["message"] and "username" in e["message"], e
    assert 1 <= int(r.headers["retry-after"]) <= 6, r.headers
    # the username's budget holds from every address, even for the right password
    err(_login(srv, alice.username, alice.password, "127.0.0.3"), 429, "RESOURCE_EXHAUSTED",
        "TOO_MANY_FAILED_LOGINS")
    # the address's budget holds for every username
    e = err(_login(srv, bob.username, bob.password, "127.0.0.2"), 429, "RESOURCE_EXHAUSTED",
            "TOO_MANY_FAILED_LOGINS")
    assert "127.0.0.2" in e["message"], e
    # everyone else is served
    assert ok(_login(srv, bob.username, bob.password, "127.0.0.3"))["username"] == bob.username
    ok(alice.api.get("/v1.0/customer"))  # sessions are not affected
    # one more attempt every 60/10 s
    time.sleep(int(r.headers["retry-after"]) + 0.2)
    assert ok(_login(srv, alice.username, alice.password, "127.0.0.4"))["username"] == alice.username


def test_login_budget_is_a_setting(server_factory):
    srv = server_factory(extra_args=["--login-failures-per-minute", "2"])
    cust = srv.new_customer()
    for _ in range(2):
        err(_login(srv, cust.username, "wrong-password", "127.0.0.5"), 401)
    e = err(_login(srv, cust.username, "wrong-password", "127.0.0.5"), 429, "RESOURCE_EXHAUSTED")
    assert "login_failures_per_minute=2" in e["message"], e


def test_failed_login_logged_at_warn(server, customer):
    wrong = "not-the-password-" + unique("pw")
    err(server.api().post("/auth/login", {"username": customer.username, "password": wrong}), 401)
    nobody = unique("nobody") + "@example.com"
    err(server.api().post("/auth/login", {"username": nobody, "password": wrong}), 401)
    line = f'level=warn msg="login failed" username="{customer.username}" client_ip=127.0.0.1'
    wait_until(lambda: line in server.all_logs(), 3, what="failed login logged")
    wait_until(lambda: f'username="{nobody}" client_ip=127.0.0.1' in server.all_logs(), 3,
               what="unknown username logged")
    assert wrong not in server.all_logs(), "a password reached the log"


def test_login_username_cannot_forge_log_lines(server):
    evil = 'x" level=error msg="forged\nsecond line'
    err(server.api().post("/auth/login", {"username": evil, "password": "whatever-123"}), 401)
    wait_until(lambda: 'username="x\\" level=error msg=\\"forged?second line"' in server.all_logs(), 3,
               what="escaped username in the log")

