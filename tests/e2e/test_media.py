"""The media plane with real SIP phones: three baresip phones dial a conference's direct URI,
each sending its own tone; each hears the other two and never itself; the API and the WebSocket
show three joined participants; a kick hangs up that phone; DELETE hangs up the rest and the
conference ends terminated."""

import time

import pytest

from conftest import err, ok, wait_until, ws_connect, ws_collect
from phones import Phone, have_baresip, make_tone, max_tone_level, pcmu_offer, sip_request

pytestmark = pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")

TONES = {"alice": 440, "bob": 700, "carol": 1100}


def _joined(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    ids = c["conferencecall_ids"]
    ccs = [ok(api.get(f"/v1.0/conferencecalls/{i}")) for i in ids]
    return [cc for cc in ccs if cc["status"] == "joined"]


def test_three_phones_hear_each_other(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="media")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    ws = ws_connect(server, customer.token)
    ws.send('{"type":"subscribe","topics":["customer_id:%s:conferencecall"]}' % customer.id)
    phones = []
    try:
        for name, hz in TONES.items():
            wav = tmp_path / f"{name}.wav"
            make_tone(wav, hz)
            phones.append(Phone(tmp_path, name, wav).dial(uri))
        wait_until(lambda: len(_joined(api, conf["id"])) == 3, 15, what="three joined participants")
        joined = _joined(api, conf["id"])
        assert all(cc["reference_type"] == "call" for cc in joined)
        calls = [ok(api.get(f"/v1.0/calls/{cc['reference_id']}")) for cc in joined]
        assert all(c["status"] == "progressing" and c["direction"] == "incoming" for c in calls)

        frames = ws_collect(ws, 1.0)
        joined_events = [f for f in frames if f["type"] == "conferencecall_joined"]
        assert len({f["data"]["id"] for f in joined_events}) == 3, frames

        time.sleep(4)  # let every phone hear the others for a while

        # kick the first participant: its phone is hung up (BYE)
        kicked = joined[0]
        r = ok(api.delete(f"/v1.0/conferencecalls/{kicked['id']}"))
        assert r["status"] in ("leaving", "leaved")
        wait_until(lambda: ok(api.get(f"/v1.0/calls/{kicked['reference_id']}"))["status"] == "hangup",
                   10, what="kicked call hung up")
        wait_until(lambda: len(_joined(api, conf["id"])) == 2, 10, what="two left")

        # DELETE hangs up the rest; the conference ends terminated
        ok(api.delete(f"/v1.0/conferences/{conf['id']}"))
        wait_until(lambda: ok(api.get(f"/v1.0/conferences/{conf['id']}"))["status"] == "terminated",
                   10, what="conference terminated")
        for c in calls:
            wait_until(lambda c=c: ok(api.get(f"/v1.0/calls/{c['id']}"))["status"] == "hangup", 10,
                       what="calls hung up")
    finally:
        ws.close()
        for p in phones:
            p.stop()

    for p in phones:
        x, rate = p.heard()
        assert len(x) > rate * 2, f"{p.name} recorded almost nothing\n{p.log()[-2000:]}"
        own = max_tone_level(x, rate, TONES[p.name])
        others = {n: max_tone_level(x, rate, hz) for n, hz in TONES.items() if n != p.name}
        assert own < 300, f"{p.name} hears itself ({own:.0f}); others {others}"
        for n, level in others.items():
            assert level > 2000, f"{p.name} does not hear {n} ({level:.0f}); own {own:.0f}"


def test_direct_uri_answers(server, customer):
    """Unknown hash → 404; a deleted conference's hash → 404; no SDP offer → 488; OPTIONS → 200."""
    host = f"127.0.0.1:{server.sip_port}"
    code, _ = sip_request(server.sip_port, "INVITE", f"sip:direct.0123456789ab@{host}", pcmu_offer())
    assert code == 404
    code, _ = sip_request(server.sip_port, "INVITE", f"sip:nobody@{host}", pcmu_offer())
    assert code == 404
    code, _ = sip_request(server.sip_port, "OPTIONS", f"sip:{host}")
    assert code == 200

    gone = customer.create_conference(name="gone")
    ok(customer.api.delete(f"/v1.0/conferences/{gone['id']}"))
    code, _ = sip_request(server.sip_port, "INVITE", f"sip:{gone['direct_hash']}@{host}", pcmu_offer())
    assert code == 404

    live = customer.create_conference(name="no-offer")
    code, _ = sip_request(server.sip_port, "INVITE", f"sip:{live['direct_hash']}@{host}", None)
    assert code == 488
    err(customer.api.get("/v1.0/calls/00000000-0000-4000-8000-000000000000"), 404, "NOT_FOUND",
        "CALL_NOT_FOUND")
