"""The operator account: created only once the server is up, repaired when an earlier version's
first start died before showing its password, and `conferenced passwd USERNAME` to reset any
agent's password while the server is stopped."""

import os
import re
import socket
import sqlite3
import subprocess

import pytest

from conftest import ADMIN_USERNAME, err, ok

GENERATED_RE = re.compile(r"first start: created admin '([^']*)' with password '([^']*)'")


def _generated(srv):
    for line in srv.stdout_lines:
        m = GENERATED_RE.search(line)
        if m:
            return m.group(1), m.group(2)
    return None


def _db(srv):
    return os.path.join(srv.data_dir, "conferenced.db")


@pytest.mark.parametrize("blocked", ["http", "sip"])
def test_failed_first_start_leaves_no_operator(server_factory, blocked):
    kind = socket.SOCK_STREAM if blocked == "http" else socket.SOCK_DGRAM
    blocker = socket.socket(socket.AF_INET, kind)
    blocker.bind(("127.0.0.1", 0))
    if blocked == "http":
        blocker.listen(1)
    port = blocker.getsockname()[1]
    srv = server_factory(start=False, admin_password="")  # no password given: one is generated
    srv.extra_args = [f"--{blocked}", f"127.0.0.1:{port}"]
    try:
        with pytest.raises(AssertionError):
            srv.start(timeout=5)
        assert _generated(srv) is None, srv.stdout_lines
    finally:
        blocker.close()
    # the next start, with a chosen password, creates the operator with it
    srv.extra_args = []
    srv.admin_password = "chosen-after-a-failed-start"
    srv.start()
    assert _generated(srv) is None
    tok = srv.login(ADMIN_USERNAME, "chosen-after-a-failed-start")
    assert len(ok(srv.api(tok).get("/v1.0/customers"))["result"]) == 1


def test_generated_password_printed_once(server_factory):
    srv = server_factory(admin_password="")
    user, password = _generated(srv)
    assert user == ADMIN_USERNAME and len(password) >= 12
    assert password not in srv.all_logs(), "the generated password reached the log"
    srv.login(ADMIN_USERNAME, password)
    srv.stop()
    srv.stdout_lines.clear()
    srv.start()
    assert _generated(srv) is None
    srv.login(ADMIN_USERNAME, password)


def _make_unfinished_first_start(srv):
    """Turns a stopped server's store into what an earlier version left when its first start
    died before listening: the operator with a password nobody knows, no trace of the set-up."""
    db = sqlite3.connect(_db(srv))
    try:
        db.execute("DELETE FROM meta WHERE key = 'operator_ready'")
        db.execute("UPDATE agents SET password_hash = '$argon2id$v=19$m=65536,t=2,p=1$bG9zdA$bG9zdA', "
                   "tm_update = tm_create")
        db.commit()
    finally:
        db.close()


def test_unfinished_first_start_of_an_earlier_version_is_repaired(server_factory):
    srv = server_factory()
    customer_id = ok(srv.operator().get("/v1.0/customer"))["id"]
    assert srv.stop() == 0
    _make_unfinished_first_start(srv)
    srv.admin_password = "repaired-operator-pass"
    srv._op_token = None
    srv.start()
    tok = srv.login(ADMIN_USERNAME, "repaired-operator-pass")
    assert ok(srv.api(tok).get("/v1.0/customer"))["id"] == customer_id
    assert [c["id"] for c in ok(srv.api(tok).get("/v1.0/customers"))["result"]] == [customer_id]
    # repaired once: later starts keep it
    assert srv.stop() == 0
    srv.admin_password = "yet-another-password"
    srv.start()
    err(srv.api().post("/auth/login", {"username": ADMIN_USERNAME, "password": "yet-another-password"}), 401)
    srv.login(ADMIN_USERNAME, "repaired-operator-pass")


def test_unfinished_first_start_without_password_prints_one(server_factory):
    srv = server_factory()
    assert srv.stop() == 0
    _make_unfinished_first_start(srv)
    srv.admin_password = ""
    srv.stdout_lines.clear()
    srv.start()
    user, password = _generated(srv)
    srv.login(user, password)


def test_used_store_of_an_earlier_version_is_kept(server_factory):
    srv = server_factory()
    cust = srv.new_customer()  # the old server ran and was used
    assert srv.stop() == 0
    db = sqlite3.connect(_db(srv))
    db.execute("DELETE FROM meta WHERE key = 'operator_ready'")
    db.commit()
    db.close()
    original = srv.admin_password
    srv.admin_password = "not-applied-password"
    srv.start()
    err(srv.api().post("/auth/login", {"username": ADMIN_USERNAME, "password": "not-applied-password"}), 401)
    srv.login(ADMIN_USERNAME, original)
    srv.login(cust.username, cust.password)


def _passwd(srv, username, password=None, stdin=None, extra=()):
    env = dict(os.environ)
    env.pop("CONFERENCED_NEW_PASSWORD", None)
    if password is not None:
        env["CONFERENCED_NEW_PASSWORD"] = password
    return subprocess.run([srv.bin, "passwd", username, "--data", srv.data_dir, *extra], input=stdin,
                          capture_output=True, text=True, env=env, timeout=30)


def test_passwd_command(server_factory):
    srv = server_factory()
    cust = srv.new_customer()
    agent, username, password = cust.create_agent(permission=32)
    agent_tok = srv.login(username, password)
    op_tok = srv.operator_token()

    # while the server runs, the store is locked: the command says so
    r = _passwd(srv, username, "new-agent-password")
    assert r.returncode == 1, r
    assert "in use" in r.stderr and "stop the server" in r.stderr, r.stderr

    assert srv.stop() == 0
    r = _passwd(srv, username, "new-agent-password")
    assert r.returncode == 0, r
    assert f"password of '{username}' changed" in r.stdout, r.stdout
    # from standard input, one line
    r = _passwd(srv, ADMIN_USERNAME, stdin="new-operator-password\n")
    assert r.returncode == 0, r
    assert "new-operator-password" not in r.stdout + r.stderr
    # mistakes are named
    r = _passwd(srv, "nobody@example.com", "whatever-password")
    assert r.returncode == 1 and "nobody@example.com" in r.stderr, r
    r = _passwd(srv, username, "short")
    assert r.returncode == 1 and "8 to 128" in r.stderr, r
    r = _passwd(srv, username, stdin="")
    assert r.returncode == 1 and "CONFERENCED_NEW_PASSWORD" in r.stderr, r
    r = subprocess.run([srv.bin, "passwd"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr, r
    empty = os.path.join(srv.data_dir, "nothing-here")
    r = _passwd(srv, username, "new-agent-password", extra=("--data", empty))
    assert r.returncode == 1 and "no store in" in r.stderr, r
    assert not os.path.exists(empty), "passwd created a store"

    srv.start()
    for tok in (agent_tok, op_tok):  # earlier sessions are over
        err(srv.api(tok).get("/v1.0/customer"), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    err(srv.api().post("/auth/login", {"username": username, "password": password}), 401)
    srv.login(username, "new-agent-password")
    srv.admin_password = "new-operator-password"
    srv._op_token = None
    ok(srv.operator().get("/v1.0/customers"))
    ok(cust.api.get("/v1.0/customer"))  # other agents keep their sessions
