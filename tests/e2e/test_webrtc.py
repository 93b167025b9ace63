"""WebRTC participants: an independent WebRTC stack (aiortc: ICE, DTLS-SRTP, Opus) joins a room
where a baresip phone plays a tone, over SIP (a WebRTC offer in an INVITE) and over WHIP (the
offer POSTed over HTTP). Each hears the other and not itself, the room's recording holds both;
the call records exist; a DTLS
handshake that fails (the offer's fingerprint is not the peer's certificate) hangs the call up;
WHIP's errors are clear, and another customer's conference is not found."""

import os
import time

import pytest

from conftest import err, http_raw, ok, wait_until
from phones import (Phone, have_baresip, make_tone, make_tones, max_tone_level, read_wav,
                    record_room, joined)
from webrtc_peer import WebRtcCall, have_aiortc

pytestmark = pytest.mark.skipif(not (have_baresip() and have_aiortc()),
                                reason="baresip, sox and python3-aiortc are needed")

PHONE_HZ, BROWSER_HZ, BROWSER_HIGH_HZ = 700, 1100, 5500


def _phone(tmp_path, seconds=30):
    wav = tmp_path / "phone.wav"
    make_tone(wav, PHONE_HZ, seconds=seconds)
    return Phone(tmp_path, "phone", wav)


def _browser_wav(tmp_path):
    wav = tmp_path / "browser.wav"
    make_tones(wav, [BROWSER_HZ, BROWSER_HIGH_HZ], seconds=30, rate=48000)
    return wav


def _check_heard(phone, browser_rec):
    x, rate = phone.heard()
    assert len(x) > rate * 2, f"the phone recorded almost nothing\n{phone.log()[-2000:]}"
    level = max_tone_level(x, rate, BROWSER_HZ)
    assert level > 1500, f"the phone does not hear the WebRTC peer ({level:.0f})"
    assert max_tone_level(x, rate, PHONE_HZ) < 300, "the phone hears itself"
    y, yrate = read_wav(str(browser_rec))
    assert len(y) > yrate * 2, "the WebRTC peer recorded almost nothing"
    level = max_tone_level(y, yrate, PHONE_HZ)
    assert level > 1500, f"the WebRTC peer does not hear the phone ({level:.0f})"
    assert max_tone_level(y, yrate, BROWSER_HZ) < 300, "the WebRTC peer hears itself"


def test_webrtc_caller_over_sip_and_a_phone_hear_each_other(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="webrtc")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phone = _phone(tmp_path).dial(uri, seconds=40)
    rec = tmp_path / "browser-heard.wav"
    peer = WebRtcCall(server.sip_port, uri, _browser_wav(tmp_path), rec)
    try:
        assert peer.connect(timeout=10) == 200
        assert "a=ice-lite" in peer.answer and "UDP/TLS/RTP/SAVPF" in peer.answer
        assert "a=fingerprint:sha-256 " in peer.answer and "a=setup:passive" in peer.answer
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 15, what="both joined")
        wait_until(lambda: "completed" in peer.ice_state, 10, what="ICE completed")
        wait_until(lambda: peer.dtls_state() == "connected", 10, what="DTLS connected")
        record_room(api, conf["id"], 4, tmp_path / "room.wav")
        calls = ok(api.get("/v1.0/calls"))["result"]
        assert any(c["status"] == "progressing" and "sip" in str(c["source"]) for c in calls)
    finally:
        peer.stop()
        phone.stop()
    _check_heard(phone, rec)
    x, rate = read_wav(str(tmp_path / "room.wav"))  # the recording holds both
    for hz in (PHONE_HZ, BROWSER_HZ):
        assert max_tone_level(x, rate, hz) > 1500, f"the room's recording lacks {hz} Hz"
    # the WebRTC peer's BYE ends its call; the phone's participant stays
    wait_until(lambda: len(joined(api, conf["id"])) <= 1, 10, what="the WebRTC peer left")


def test_a_failed_dtls_handshake_hangs_the_call_up(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="bad-dtls")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"

    def wrong_fingerprint(sdp):  # not the certificate aiortc shows: the server must refuse it
        import re
        return re.sub(r"a=fingerprint:sha-256 [0-9A-F:]+",
                      "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), sdp)

    peer = WebRtcCall(server.sip_port, uri, _browser_wav(tmp_path), tmp_path / "x.wav",
                      offer_filter=wrong_fingerprint)
    try:
        assert peer.connect(timeout=10) == 200
        assert peer.wait_bye(15), "the server did not hang up a call whose DTLS failed"
    finally:
        peer.stop(hangup=False)
    calls = ok(api.get("/v1.0/calls"))["result"]
    assert any(c["status"] == "hangup" and c["hangup_reason"] == "failed" for c in calls), calls


def _whip(server, token, conf_id, sdp, content_type="application/sdp"):
    return http_raw(server.port, "POST", f"/v1.0/conferences/{conf_id}/whip", body=sdp,
                    content_type=content_type, headers=[("Authorization", f"Bearer {token}")])


def test_whip_joins_hears_and_leaves(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="whip")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phone = _phone(tmp_path).dial(uri, seconds=40)
    rec = tmp_path / "whip-heard.wav"
    peer = WebRtcCall(server.sip_port, uri, _browser_wav(tmp_path), rec)  # media only: no SIP
    try:
        r = _whip(server, customer.token, conf["id"], peer.offer())
        assert r.status == 201, r
        assert r.content_type.startswith("application/sdp"), r
        location = r.headers["location"]
        assert location.startswith("/v1.0/whip/"), r.headers
        call_id = location.rsplit("/", 1)[1]
        peer.answer = r.text
        peer._run(peer._start())
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 15, what="both joined")
        call = ok(api.get(f"/v1.0/calls/{call_id}"))
        assert call["status"] == "progressing"
        assert call["source"]["type"] == "web_session"
        assert call["destination"] == {"type": "conference", "target": conf["id"],
                                       "target_name": ""} or \
            call["destination"]["target"] == conf["id"]
        time.sleep(4)
        # another customer cannot end it
        d = http_raw(server.port, "DELETE", location,
                     headers=[("Authorization", "Bearer " + customer.token[:-2] + "xx")])
        assert d.status == 401, d
        d = http_raw(server.port, "DELETE", location,
                     headers=[("Authorization", f"Bearer {customer.token}")])
        assert d.status == 200, d
        assert d.json["status"] == "hangup"
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 10, what="the WHIP peer left")
        d = http_raw(server.port, "DELETE", location,
                     headers=[("Authorization", f"Bearer {customer.token}")])
        assert d.status == 404, d
    finally:
        peer.stop(hangup=False)
        phone.stop()
    _check_heard(phone, rec)


def test_whip_errors(server, customer, other_customer, tmp_path):
    conf = customer.create_conference(name="whip-errors")
    peer = WebRtcCall(server.sip_port, "sip:x@127.0.0.1", _browser_wav(tmp_path), tmp_path / "y.wav")
    try:
        offer = peer.offer()
        r = _whip(server, customer.token, conf["id"], offer, content_type="application/json")
        assert "application/sdp" in err(r, 415, reason="UNSUPPORTED_MEDIA_TYPE")["message"]
        r = _whip(server, customer.token, conf["id"], "v=0\r\nthis is not sdp\r\n")
        err(r, 400, reason="UNUSABLE_OFFER")
        plain = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        r = _whip(server, customer.token, conf["id"], plain)
        assert "WebRTC" in err(r, 400, reason="UNUSABLE_OFFER")["message"]
        err(_whip(server, other_customer.token, conf["id"], offer), 404)
        r = http_raw(server.port, "POST", f"/v1.0/conferences/{conf['id']}/whip", body=offer,
                     content_type="application/sdp")
        err(r, 401)
        r = http_raw(server.port, "PATCH", "/v1.0/whip/" + conf["id"], body="a=candidate:x",
                     content_type="application/trickle-ice-sdpfrag",
                     headers=[("Authorization", f"Bearer {customer.token}")])
        err(r, 405)
        r = http_raw(server.port, "DELETE", "/v1.0/whip/" + conf["id"],
                     headers=[("Authorization", f"Bearer {customer.token}")])
        err(r, 404, reason="SESSION_NOT_FOUND")
        # nothing was created by the refused offers
        assert not [c for c in ok(customer.api.get("/v1.0/calls"))["result"]
                    if c["status"] != "hangup"]
    finally:
        peer.stop(hangup=False)


def test_cors_lets_web_pages_use_whip(server, customer):
    """A page on another origin may POST an offer: the preflight names what it may send, and
    the answer exposes Location (a WHIP client needs it)."""
    conf = customer.create_conference(name="cors")
    path = f"/v1.0/conferences/{conf['id']}/whip"
    r = http_raw(server.port, "OPTIONS", path,
                 headers=[("Origin", "http://127.0.0.1:9"),
                          ("Access-Control-Request-Method", "POST"),
                          ("Access-Control-Request-Headers", "authorization, content-type")])
    assert r.status == 204, r
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = http_raw(server.port, "GET", f"/v1.0/conferences/{conf['id']}",
                 headers=[("Origin", "http://127.0.0.1:9"),
                          ("Authorization", f"Bearer {customer.token}")])
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "*", r
    assert "location" in r.headers["access-control-expose-headers"].lower()
    # without an Origin (not a browser), no CORS headers
    r = http_raw(server.port, "GET", f"/v1.0/conferences/{conf['id']}",
                 headers=[("Authorization", f"Bearer {customer.token}")])
    assert "access-control-allow-origin" not in r.headers


def test_cors_can_be_narrowed_or_turned_off(server_factory):
    srv = server_factory(extra_args=["--cors-origin", "https://app.example.com"])
    r = http_raw(srv.port, "OPTIONS", "/v1.0/conferences",
                 headers=[("Origin", "https://app.example.com"),
                          ("Access-Control-Request-Method", "POST")])
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert r.headers.get("vary") == "Origin"
    off = server_factory(extra_args=["--cors-origin", ""])
    r = http_raw(off.port, "OPTIONS", "/v1.0/conferences",
                 headers=[("Origin", "https://app.example.com"),
                          ("Access-Control-Request-Method", "POST")])
    assert r.status != 204 and "access-control-allow-origin" not in r.headers, r


def test_a_whip_peer_that_closes_without_delete_leaves(server, customer, tmp_path):
    """A page that goes away (its peer connection closed: DTLS close_notify) without the DELETE:
    its call ends at once as hung up by the remote side, rather than at the RTP timeout."""
    api = customer.api
    conf = customer.create_conference(name="whip-close")
    peer = WebRtcCall(server.sip_port, "sip:x@127.0.0.1", _browser_wav(tmp_path),
                      tmp_path / "z.wav")
    try:
        r = _whip(server, customer.token, conf["id"], peer.offer())
        assert r.status == 201, r
        call_id = r.headers["location"].rsplit("/", 1)[1]
        peer.answer = r.text
        peer._run(peer._start())
        wait_until(lambda: peer.dtls_state() == "connected", 10, what="DTLS connected")
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 10, what="joined")
    finally:
        peer.stop(hangup=False)  # closes the peer connection: close_notify
    wait_until(lambda: ok(api.get(f"/v1.0/calls/{call_id}"))["status"] == "hangup", 5,
               what="the call ended")
    call = ok(api.get(f"/v1.0/calls/{call_id}"))
    assert call["hangup_by"] == "remote" and call["hangup_reason"] == "normal", call


def test_a_flood_of_stun_at_a_webrtc_leg(server, customer, tmp_path):
    """Thousands of bad checks (wrong credentials) and STUN-looking junk at a WebRTC participant's
    port while it talks: it keeps talking, the server answers a few errors a second at most (it
    cannot be made to reflect a flood), and what the mailbox cannot take is dropped."""
    import socket
    import struct
    api = customer.api
    conf = customer.create_conference(name="stun-flood")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phone = _phone(tmp_path).dial(uri, seconds=40)
    rec = tmp_path / "flooded-heard.wav"
    peer = WebRtcCall(server.sip_port, uri, _browser_wav(tmp_path), rec)
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.0.1", 0))
    flood.setblocking(False)
    answers = 0
    try:
        assert peer.connect(timeout=10) == 200
        wait_until(lambda: peer.dtls_state() == "connected", 10, what="DTLS connected")
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 15, what="both joined")
        time.sleep(1)
        port = peer.remote_media
        # a Binding request with a made-up USERNAME and MESSAGE-INTEGRITY: 401 material
        attrs = struct.pack("!HH", 0x0006, 9) + b"nobody:xx" + b"\0" * 3 + \
            struct.pack("!HH", 0x0008, 20) + b"\x11" * 20
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() - t0 < 3:
            for _ in range(200):
                txid = os.urandom(12)
                bad = struct.pack("!HHI", 0x0001, len(attrs), 0x2112A442) + txid + attrs
                junk = b"\x00\x01" + os.urandom(30)
                for d in (bad, junk):
                    try:
                        flood.sendto(d, ("127.0.0.1", port))
                        sent += 1
                    except BlockingIOError:
                        pass
            while True:
                try:
                    flood.recvfrom(2048)
                    answers += 1
                except BlockingIOError:
                    break
            time.sleep(0.01)
        time.sleep(0.3)
        while True:
            try:
                flood.recvfrom(2048)
                answers += 1
            except BlockingIOError:
                break
        assert sent > 10000, sent
        assert answers <= 5 * 5, f"{answers} error answers to a 3 s flood of {sent}"
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 5, what="both still joined")
        time.sleep(3)
    finally:
        flood.close()
        peer.stop()
        phone.stop()
    _check_heard(phone, rec)
