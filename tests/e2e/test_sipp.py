"""Call set-up with sipp (a real SIP load tool): many calls to a conference's direct URI, each
answered, joined, and ended by the caller's BYE; afterwards every call is hung up and nobody is
left in the conference."""

import os
import shutil
import subprocess

import pytest

from conftest import ok, wait_until

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is needed")

SCENARIO = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "sipp", "uac_direct.xml")


def test_sipp_calls(server, customer, tmp_path):
    conf = customer.create_conference(name="sipp")
    res = subprocess.run(["sipp", f"127.0.0.1:{server.sip_port}", "-sf", SCENARIO, "-s",
                          conf["direct_hash"], "-i", "127.0.0.1", "-p", "0", "-r", "20", "-m", "40",
                          "-l", "40", "-nostdin", "-timeout", "30", "-timeout_error"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]

    def settled():
        calls = ok(customer.api.get("/v1.0/calls", query={"page_size": "100"}))["result"]
        mine = [c for c in calls if conf["direct_hash"] in c["destination"]["target"]]
        return len(mine) == 40 and all(c["status"] == "hangup" for c in mine) and mine

    calls = wait_until(settled, 10, what="40 calls hung up")
    assert all(c["hangup_by"] == "remote" for c in calls)
    c = ok(customer.api.get(f"/v1.0/conferences/{conf['id']}"))
    assert c["conferencecall_ids"] == [] and c["status"] == "progressing"
    ccs = ok(customer.api.get("/v1.0/conferencecalls", query={"conference_id": conf["id"]}))["result"]
    assert len(ccs) == 40 and all(cc["status"] == "leaved" for cc in ccs)
