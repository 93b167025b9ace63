"""The media plane with real SIP phones: three baresip phones dial a conference's direct URI,
each sending its own tone; each hears the other two and never itself; the API and the WebSocket
show three joined participants; a kick hangs up that phone; DELETE hangs up the rest and the
conference ends terminated."""

import time

import pytest

from conftest import err, ok, wait_until, ws_connect, ws_collect
from phones import (Phone, RawCall, ScriptedUas, have_baresip, make_tone, max_tone_level,
                    pcmu_offer, sip_request)

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


def test_sip_flood_keeps_rooms_on_time(server_factory, tmp_path):
    """Garbage datagrams and INVITEs for unknown conferences while a call is in a room: the
    server answers or drops them, never crashes, and the media clock never runs late."""
    import random
    import re
    import socket

    srv = server_factory("flood")
    cust = srv.new_customer()
    conf = cust.create_conference(name="flooded")
    wav = tmp_path / "tone.wav"
    make_tone(wav, 500, seconds=30)
    phone = Phone(tmp_path, "flooded", wav).dial(f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
    try:
        wait_until(lambda: len(_joined(cust.api, conf["id"])) == 1, 15, what="the phone joined")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random(7)
        for i in range(6000):
            if i % 3 == 0:
                msg = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 600)))
            elif i % 3 == 1:
                msg = (f"INVITE sip:direct.{i:012x}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;"
                       f"branch=z9hG4bK{i}\r\nFrom: <sip:x@y>;tag={i}\r\nTo: <sip:a@b>\r\n"
                       f"Call-ID: flood{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
            else:
                msg = b"BYE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n" + b"A" * rnd.randrange(0, 2000)
            s.sendto(msg, ("127.0.0.1", srv.sip_port))
        s.close()
        time.sleep(1)
        assert srv.alive()
        assert len(_joined(cust.api, conf["id"])) == 1  # the call is still in its room
    finally:
        phone.stop()
    rc = srv.stop()
    assert rc == 0
    stats = [l for l in srv.all_logs().splitlines() if "media stats" in l]
    assert stats, "no media stats line at shutdown"
    late = int(re.search(r"late_ticks=(\d+)", stats[-1]).group(1))
    ticks = int(re.search(r" ticks=(\d+)", stats[-1]).group(1))
    assert ticks > 50 and late == 0, stats[-1]


def test_shutdown_hangs_up_calls(server_factory, tmp_path):
    """SIGTERM ends established calls with BYE and records them hung up by the server."""
    import random
    import socket

    srv = server_factory("shutdown")
    cust = srv.new_customer()
    conf = cust.create_conference(name="closing")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    lport = s.getsockname()[1]
    tag = "%08x" % random.getrandbits(32)
    call_id = "%016x@shutdown" % random.getrandbits(64)
    sdp = pcmu_offer(lport + 2)
    head = [f"INVITE {ruri} SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKsd{tag}",
            "Max-Forwards: 70", f"From: <sip:t@127.0.0.1:{lport}>;tag={tag}", f"To: <{ruri}>",
            f"Call-ID: {call_id}", "CSeq: 1 INVITE", f"Contact: <sip:t@127.0.0.1:{lport}>",
            "Content-Type: application/sdp", f"Content-Length: {len(sdp)}"]
    s.sendto(("\r\n".join(head) + "\r\n\r\n" + sdp).encode(), ("127.0.0.1", srv.sip_port))
    while True:
        text = s.recvfrom(65535)[0].decode()
        if text.startswith("SIP/2.0 200"):
            break
    to = next(l for l in text.split("\r\n") if l.lower().startswith("to:"))
    ack = [f"ACK {ruri} SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKack{tag}",
           "Max-Forwards: 70", f"From: <sip:t@127.0.0.1:{lport}>;tag={tag}", to,
           f"Call-ID: {call_id}", "CSeq: 1 ACK", "Content-Length: 0"]
    s.sendto(("\r\n".join(ack) + "\r\n\r\n").encode(), ("127.0.0.1", srv.sip_port))
    joined = wait_until(lambda: _joined(cust.api, conf["id"]), 10, what="the caller joined")
    call_id_api = joined[0]["reference_id"]
    assert srv.stop() == 0
    bye = s.recvfrom(65535)[0].decode()
    assert bye.startswith("BYE "), bye
    s.close()
    srv.start()
    api = srv.api(srv.login(cust.username, cust.password))
    call = ok(api.get(f"/v1.0/calls/{call_id_api}"))
    assert call["status"] == "hangup" and call["hangup_by"] == "local", call
    assert call["hangup_reason"] == "normal", call


def test_connect_eject_and_terminate(server, customer):
    """connect type with real calls: when one hangs up, the other gets a BYE and the conference
    terminates."""
    conf = customer.create_conference(type="connect", name="pair")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    a, b, c = RawCall(server.sip_port, ruri), RawCall(server.sip_port, ruri), RawCall(server.sip_port, ruri)
    try:
        assert a.connect() == 200 and b.connect() == 200
        wait_until(lambda: len(_joined(customer.api, conf["id"])) == 2, 10, what="two joined")
        assert c.connect() == 486  # a third is refused: the pair is complete
        a.hangup()
        assert b.wait_bye(10), "the other party was not hung up"
        wait_until(lambda: ok(customer.api.get(f"/v1.0/conferences/{conf['id']}"))["status"] == "terminated",
                   10, what="connect conference terminated")
        # the conference is over but not deleted: its URI now answers 403
        code, _ = sip_request(server.sip_port, "INVITE", ruri, pcmu_offer())
        assert code == 403
    finally:
        for x in (a, b, c):
            x.close()


def test_call_hangup_and_delete_endpoints(server, customer):
    conf = customer.create_conference(name="api-hangup")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    a, b = RawCall(server.sip_port, ruri), RawCall(server.sip_port, ruri)
    try:
        assert a.connect() == 200 and b.connect() == 200
        joined = wait_until(lambda: (lambda j: j if len(j) == 2 else None)(_joined(customer.api, conf["id"])),
                            10, what="two joined")
        call_a = joined[0]["reference_id"]
        call_b = joined[1]["reference_id"]
        r = ok(customer.api.post(f"/v1.0/calls/{call_a}/hangup"))
        assert r["status"] in ("terminating", "hangup")
        assert a.wait_bye(5) or b.wait_bye(0.1)
        wait_until(lambda: ok(customer.api.get(f"/v1.0/calls/{call_a}"))["status"] == "hangup", 5,
                   what="hung up")
        got = ok(customer.api.get(f"/v1.0/calls/{call_a}"))
        assert got["hangup_by"] == "local" and got["hangup_reason"] == "normal"
        # a second hangup changes nothing
        assert ok(customer.api.post(f"/v1.0/calls/{call_a}/hangup"))["status"] == "hangup"
        # DELETE hangs up a live call and removes it from the list
        d = ok(customer.api.delete(f"/v1.0/calls/{call_b}"))
        assert d["tm_delete"] != "9999-01-01 00:00:00.000000"
        listed = [c["id"] for c in ok(customer.api.get("/v1.0/calls"))["result"]]
        assert call_b not in listed and call_a in listed
        # another customer sees neither
        other = server.new_customer()
        err(other.api.get(f"/v1.0/calls/{call_a}"), 404, "NOT_FOUND", "CALL_NOT_FOUND")
        err(other.api.post(f"/v1.0/calls/{call_a}/hangup"), 404, "NOT_FOUND", "CALL_NOT_FOUND")
        err(customer.api.get("/v1.0/calls/not-a-uuid"), 400, "INVALID_ARGUMENT", "INVALID_ID")
    finally:
        a.close()
        b.close()


def test_rtp_inactivity_hangs_up(server_factory):
    srv = server_factory("quiet", extra_args=("--rtp-timeout-ms", "1500"))
    cust = srv.new_customer()
    conf = cust.create_conference(name="quiet")
    call = RawCall(srv.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
    try:
        assert call.connect() == 200
        assert call.wait_bye(6), "no BYE after the RTP timeout"
        calls = ok(cust.api.get("/v1.0/calls"))["result"]
        assert calls[0]["status"] in ("terminating", "hangup")
        wait_until(lambda: ok(cust.api.get(f"/v1.0/calls/{calls[0]['id']}"))["hangup_reason"] == "timeout",
                   5, what="hangup reason timeout")
    finally:
        call.close()


def test_dtmf_events(server, customer):
    conf = customer.create_conference(name="keys")
    ws = ws_connect(server, customer.token)
    ws.send('{"type":"subscribe","topics":["customer_id:%s:call"]}' % customer.id)
    call = RawCall(server.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}")
    try:
        assert call.connect() == 200
        for _ in range(5):  # some audio first, so the media path is latched
            call.send_rtp(0, b"\xff" * 160)
            call.ts = (call.ts + 160) & 0xffffffff
            time.sleep(0.02)
        call.send_dtmf(5)
        call.send_dtmf(11)  # '#'
        frames = ws_collect(ws, 1.5)
        digits = [f["data"]["digit"] for f in frames if f["type"] == "call_dtmf_received"]
        assert digits == ["5", "#"], frames
        call.hangup()
    finally:
        ws.close()
        call.close()


# ---------------------------------------------------------------------------------------------------
# Strict RTP learning: a phone behind a NAT
# ---------------------------------------------------------------------------------------------------

def test_nat_phone_is_learned(server, customer):
    """The caller's SDP names an address that never sends (a phone's private address behind a
    NAT, 127.0.0.3 here); its audio comes from the NAT's address, the one its SIP comes from
    (127.0.0.1). The leg learns that source: the room hears the caller, and the caller's audio goes
    back where its packets come from (symmetric RTP)."""
    from rtp_peer import Pacer, RtpPeer, SdpCall
    conf = customer.create_conference(name="nat")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    private = RtpPeer("127.0.0.3")           # what the SDP says; never sends
    nat = RtpPeer("127.0.0.1", hz=440)       # where the phone's packets really come from
    listener = RtpPeer("127.0.0.1", hz=0)    # the other participant, SDP = its own address
    a = SdpCall(server.sip_port, ruri, private.port, sdp_ip="127.0.0.3")
    b = SdpCall(server.sip_port, ruri, listener.port)
    pacer = Pacer()
    try:
        assert a.connect() == 200 and b.connect() == 200
        pacer.add_send(nat, a.remote_media)
        pacer.add_send(listener, b.remote_media)
        for p in (private, nat, listener):
            pacer.add_drain(p)
        pacer.start()
        wait_until(lambda: len(_joined(customer.api, conf["id"])) == 2, 10, what="two joined")
        time.sleep(0.5)
        for p in (private, nat, listener):
            p.forget()
        time.sleep(2.5)
        assert listener.level(440) > 2000, listener.level(440)   # the room hears the NAT'd phone
        assert nat.packets > 80, nat.packets                     # and answers it there
        assert private.packets == 0, private.packets
        a.hangup()
        b.hangup()
    finally:
        pacer.stop()
        for x in (a, b, private, nat, listener):
            x.close()


# ---------------------------------------------------------------------------------------------------
# The RTP inactivity timer starts at the answer
# ---------------------------------------------------------------------------------------------------

def _call(api, call_id):
    return ok(api.get(f"/v1.0/calls/{call_id}"))


def _seconds(c, a, b):
    from conftest import parse_ts
    return (parse_ts(c[b]) - parse_ts(c[a])).total_seconds()


def test_rtp_timer_starts_at_answer(server_factory):
    """With rtp_timeout_ms (1 s) shorter than ring_timeout_ms (3 s), an outgoing call that rings
    ends at the ring timeout with noanswer (it used to be cut by the RTP timer: cancel); one that
    is answered and sends no RTP is hung up by the RTP timer; an incoming call whose flow answers
    after 2.5 s is answered, one whose flow would take longer than the ring timeout is refused
    480 (noanswer); a destination that never answers at all ends failed after the SIP
    transaction timeout (64*T1 = 32 s), not cancelled by the RTP timer."""
    quick = server_factory("quick-rtp", extra_args=("--rtp-timeout-ms", "1000",
                                                    "--ring-timeout-ms", "3000"))
    slow = server_factory("default-ring", extra_args=("--rtp-timeout-ms", "1000"))
    silent = ScriptedUas(silent=True)
    ring = ScriptedUas(final=None)
    answer = ScriptedUas(final=200, ring=False)
    try:
        scust = slow.new_customer()
        t_silent = time.monotonic()
        silent_id = ok(scust.api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": silent.uri}],
            "actions": [{"type": "hangup"}]}))["calls"][0]["id"]

        cust = quick.new_customer()
        api = cust.api
        # rings for longer than the RTP timeout: noanswer at the ring timeout
        t0 = time.monotonic()
        ring_id = ok(api.post("/v1.0/calls", {"destinations": [{"type": "sip", "target": ring.uri}],
                                              "actions": [{"type": "hangup"}]}))["calls"][0]["id"]
        wait_until(lambda: _call(api, ring_id)["status"] == "ringing", 5, what="ringing")
        time.sleep(1.8)
        assert _call(api, ring_id)["status"] == "ringing"  # past the RTP timeout
        wait_until(lambda: _call(api, ring_id)["status"] == "hangup", 6, what="ring timeout")
        c = _call(api, ring_id)
        assert c["hangup_reason"] == "noanswer" and c["hangup_by"] == "local", c
        assert time.monotonic() - t0 >= 2.9
        assert _seconds(c, "tm_create", "tm_hangup") >= 2.9, c
        assert "CANCEL" in ring.got

        # answered, then no RTP: the RTP timer (armed at the answer) hangs up
        ans_id = ok(api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": answer.uri}],
            "actions": [{"type": "sleep", "option": {"duration": 20000}}]}))["calls"][0]["id"]
        wait_until(lambda: _call(api, ans_id)["status"] == "progressing", 5, what="answered")
        wait_until(lambda: _call(api, ans_id)["status"] == "hangup", 5, what="rtp timeout")
        c = _call(api, ans_id)
        assert c["hangup_reason"] == "timeout" and c["hangup_by"] == "local", c
        assert 0.9 <= _seconds(c, "tm_progressing", "tm_hangup") < 4, c
        assert "BYE" in answer.got

        # incoming: the flow answers after 2.5 s of ringing (past the RTP timeout)
        flow = ok(api.post("/v1.0/flows", {"name": "late answer", "actions": [
            {"type": "sleep", "option": {"duration": 2500}}, {"type": "answer"},
            {"type": "sleep", "option": {"duration": 20000}}]}))
        num = "+1555" + str(int(time.time() * 1000) % 10**7).zfill(7)
        ok(api.post("/v1.0/numbers", {"number": num, "call_flow_id": flow["id"]}))
        late = RawCall(quick.sip_port, f"sip:{num}@127.0.0.1:{quick.sip_port}")
        try:
            t1 = time.monotonic()
            assert late.connect(timeout=8) == 200
            assert time.monotonic() - t1 >= 2.4
            assert late.wait_bye(5), "no BYE after the RTP timeout"  # no RTP after the answer
        finally:
            late.close()

        # incoming whose flow does not answer within the ring timeout: refused 480, noanswer
        flow = ok(api.post("/v1.0/flows", {"name": "too late", "actions": [
            {"type": "sleep", "option": {"duration": 8000}}, {"type": "answer"}]}))
        num2 = "+1556" + str(int(time.time() * 1000) % 10**7).zfill(7)
        ok(api.post("/v1.0/numbers", {"number": num2, "call_flow_id": flow["id"]}))
        never = RawCall(quick.sip_port, f"sip:{num2}@127.0.0.1:{quick.sip_port}")
        try:
            t2 = time.monotonic()
            assert never.connect(timeout=8) == 480
            assert 2.9 <= time.monotonic() - t2 < 5
        finally:
            never.close()
        c = ok(api.get("/v1.0/calls"))["result"][0]
        assert c["direction"] == "incoming" and c["hangup_reason"] == "noanswer", c
        assert c["hangup_by"] == "local", c

        # never any answer: Timer B (32 s) ends it failed, the RTP timer never cuts in
        assert _call(scust.api, silent_id)["status"] == "dialing"
        wait_until(lambda: _call(scust.api, silent_id)["status"] == "hangup",
                   max(1.0, t_silent + 45 - time.monotonic()), interval=0.5,
                   what="transaction timeout")
        c = _call(scust.api, silent_id)
        assert c["hangup_reason"] == "failed" and c["hangup_by"] == "remote", c
        assert time.monotonic() - t_silent >= 30
        assert silent.got and set(silent.got) == {"INVITE"}, silent.got  # no CANCEL was sent
    finally:
        for u in (silent, ring, answer):
            u.close()
