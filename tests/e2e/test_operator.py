"""What an operator meets first: --help lists every setting (flag and environment variable) and
the README documents each; a data directory that cannot be used is named with the real reason;
the README's headless phone recipe joins a conference as given."""

import glob
import os
import re
import subprocess

import pytest

from conftest import _binary, ok, wait_until
from phones import have_baresip

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def help_text():
    out = subprocess.run([_binary(), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    return out.stdout


def environment_variables_read():
    """Every CONFERENCED_* name the sources mention, but include guards and the version macro."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.[ch]"), recursive=True):
        with open(path) as f:
            names |= set(re.findall(r"CONFERENCED_[A-Z_]+", f.read()))
    return {n for n in names if not n.endswith("_H") and n != "CONFERENCED_VERSION"}


def test_help_lists_every_environment_variable_and_the_readme_too():
    text = help_text()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    missing_help = sorted(n for n in environment_variables_read() if n not in text)
    missing_readme = sorted(n for n in environment_variables_read() if n not in readme)
    assert not missing_help, f"--help does not mention {missing_help}"
    assert not missing_readme, f"README.md does not mention {missing_readme}"
    for flag in re.findall(r"^  (--[a-z-]+)", text, re.M):
        if flag not in ("--help", "--config"):
            assert flag in readme, f"README.md does not document {flag}"


def start_failure(args, env=None, timeout=10):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([_binary(), "--http", "127.0.0.1:0", "--sip", "127.0.0.1:0"] + args,
                       capture_output=True, text=True, timeout=timeout, env=e)
    assert p.returncode != 0, p
    return p.stderr


def test_data_dir_problems_are_named(tmp_path, server_factory):
    f = tmp_path / "a-file"
    f.write_text("x")
    msg = start_failure(["--data", str(f)])
    assert "not a directory" in msg and "another conferenced" not in msg, msg
    # a store in use by a running server
    srv = server_factory()
    msg = start_failure(["--data", srv.data_dir])
    assert "in use by another conferenced" in msg, msg
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        msg = start_failure(["--data", str(ro)])
        assert "not writable" in msg, msg


@pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")
def test_readme_phone_recipe_joins(server, customer):
    """README: scripts/phone sip:<direct_hash>@<host>:<port> dials in as given."""
    conf = customer.create_conference(name="recipe")
    with open(os.path.join(ROOT, "README.md")) as f:
        assert re.search(r"scripts/phone sip:\$H@127\.0\.0\.1:5060", f.read()), \
            "the README's recipe changed: update this test"
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    p = subprocess.Popen([os.path.join(ROOT, "scripts", "phone"), uri, "--seconds", "6"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_until(lambda: [c for c in ok(customer.api.get("/v1.0/conferencecalls",
                                                               query={"conference_id": conf["id"]}))["result"]
                                if c["status"] == "joined"], 8, what="the phone joined")
        except AssertionError as e:
            os.killpg(p.pid, 9)
            raise AssertionError(f"{e}; the phone said: {p.communicate(timeout=5)[0]!r}") from None
        p.wait(timeout=15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
            p.wait(timeout=5)
    assert p.returncode == 0, p.stdout.read()
    wait_until(lambda: not ok(customer.api.get(f"/v1.0/conferences/{conf['id']}"))["conferencecall_ids"],
               5, what="the phone left")
