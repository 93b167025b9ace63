"""Calls without real phones (raw SIP over UDP): what POST /calls accepts as a destination, the
direct URI in both spellings, a call's current action, and media ports freed as soon as the SIP
side of a call fails."""

import random
import socket

from conftest import err, ok, wait_until
from phones import RawCall, sip_request, pcmu_offer


def new_number():
    return "+1555" + str(random.randrange(10**6, 10**7))


# ------------------------------------------------------------------------ POST /calls destinations

BAD_TARGETS = [
    ("sip:alice@127.0.0.1:0", "port"),
    ("sip:alice@127.0.0.1:99999", "port"),
    ("sip:alice@127.0.0.1:-5", "port"),
    ("sip:alice@127.0.0.1:5060junk", "port"),
    ("sip:alice@[::1]:5060", "IPv6"),
    ("sip:alice@999.1.1.1", "IPv4"),
    ("sip:alice@1.2.3", "IPv4"),
    ("sip:alice@bad_host.example.com", "DNS name"),
    ("sip:alice@-x.example.com", "'-'"),
    ("sip:alice:pw@127.0.0.1", "password"),
    ("sip:alice@127.0.0.1;transport=tcp", "parameters"),
    ("alice@127.0.0.1 x", "DNS name"),
    ("sip:127.0.0.1", "user"),
    ("sips:alice@127.0.0.1", "sip:"),
    ("tel:+15550001111", "sip:"),
]


def test_dial_bad_destination_is_400(server, customer):
    """Bad input is never a 5xx: every malformed destination gets 400 INVALID_DESTINATION naming
    the destination and what is wrong with it, and nothing is dialled."""
    api = customer.api
    before = ok(api.get("/v1.0/calls"))["result"]
    for target, why in BAD_TARGETS:
        r = api.post("/v1.0/calls", {"destinations": [{"type": "sip", "target": target}],
                                      "actions": [{"type": "hangup"}]})
        e = err(r, 400, "INVALID_ARGUMENT", "INVALID_DESTINATION")
        assert "destinations[0]" in e["message"] and why in e["message"], (target, e)
    # the second destination is named as such; the first is not dialled either
    r = api.post("/v1.0/calls", {"destinations": [{"type": "sip", "target": "sip:a@127.0.0.1:5"},
                                                  {"type": "sip", "target": "sip:b@127.0.0.1:0"}],
                                  "actions": [{"type": "hangup"}]})
    assert "destinations[1]" in err(r, 400, "INVALID_ARGUMENT", "INVALID_DESTINATION")["message"]
    assert ok(api.get("/v1.0/calls"))["result"] == before


def test_dial_good_destinations_accepted(server, customer):
    """IPv4 literals and names with a port in range are dialled (the calls fail later, nobody is
    there)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        for target in (f"sip:alice@127.0.0.1:{port}", f"bob@localhost:{port}"):
            r = ok(customer.api.post("/v1.0/calls", {
                "destinations": [{"type": "sip", "target": target}],
                "actions": [{"type": "hangup"}]}))
            call = r["calls"][0]
            assert call["status"] == "dialing", call
            ok(customer.api.post(f"/v1.0/calls/{call['id']}/hangup"))
    finally:
        s.close()


# ------------------------------------------------------------------------------- the direct URI

def test_direct_uri_both_spellings(server, customer):
    """sip:<direct_hash>@host and the seeds' sip:direct.<direct_hash>@host (which doubles our
    "direct." prefix) reach the conference; an unknown hash is 404."""
    conf = customer.create_conference(name="spellings")
    h = conf["direct_hash"]
    assert h.startswith("direct.")
    for user in (h, "direct." + h):
        code, text = sip_request(server.sip_port, "INVITE", f"sip:{user}@127.0.0.1:{server.sip_port}",
                                 sdp=pcmu_offer())
        assert code == 200, (user, text)
    for user in ("direct.direct.000000000000", "direct.direct.direct." + h[7:]):
        code, _ = sip_request(server.sip_port, "INVITE", f"sip:{user}@127.0.0.1:{server.sip_port}",
                              sdp=pcmu_offer())
        assert code == 404, user


# ------------------------------------------------------------------------- the call's action

def test_call_shows_its_current_action(server, customer, receiver):
    """A call's action is the action its flow runs now (id, type, option), kept up to date (and
    published as call_updated) as the flow moves."""
    api = customer.api
    ok(api.put("/v1.0/customer", {"webhook_uri": receiver.url}))
    flow = ok(api.post("/v1.0/flows", {"name": "steps", "actions": [
        {"type": "answer"},
        {"type": "sleep", "option": {"duration": 1500}},
        {"type": "hangup", "option": {"reason": "normal"}}]}))
    num = new_number()
    ok(api.post("/v1.0/numbers", {"number": num, "call_flow_id": flow["id"]}))
    raw = RawCall(server.sip_port, f"sip:{num}@127.0.0.1:{server.sip_port}")
    try:
        assert raw.connect() == 200

        def mine():
            calls = ok(api.get("/v1.0/calls"))["result"]
            return [c for c in calls if num in c["destination"]["target"]]

        call = wait_until(lambda: (mine() or [None])[0], 5, what="the call")
        sleep_action = flow["actions"][1]
        got = wait_until(lambda: (lambda c: c if c["action"].get("type") == "sleep" else None)(
            ok(api.get(f"/v1.0/calls/{call['id']}"))), 5, what="action sleep")
        assert got["action"] == {"id": sleep_action["id"], "type": "sleep",
                                 "option": {"duration": 1500}}, got["action"]
        assert raw.wait_bye(5), "the flow's hangup sends a BYE"
        done = wait_until(lambda: (lambda c: c if c["status"] == "hangup" else None)(
            ok(api.get(f"/v1.0/calls/{call['id']}"))), 5, what="hangup")
        assert done["action"]["type"] == "hangup" and done["action"]["id"] == flow["actions"][2]["id"]
        receiver.wait_for(lambda r: isinstance(r["json"], dict) and r["json"].get("type") == "call_updated"
                          and r["json"]["data"]["id"] == call["id"]
                          and r["json"]["data"]["action"].get("type") == "sleep", what="call_updated")
    finally:
        raw.close()


def test_direct_call_action_is_conference_join(server, customer):
    conf = customer.create_conference(name="action")
    raw = RawCall(server.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}")
    try:
        assert raw.connect() == 200

        def joined_call():
            calls = ok(customer.api.get("/v1.0/calls"))["result"]
            c = [c for c in calls if conf["direct_hash"] in c["destination"]["target"]]
            return c and c[0]["action"].get("type") == "conference_join" and c[0]

        call = wait_until(joined_call, 5, what="call in conference_join")
        assert call["action"]["option"] == {"conference_id": conf["id"]}, call["action"]
        assert set(call["action"]) == {"id", "type", "option"}
    finally:
        raw.hangup()
        raw.close()


# ------------------------------------------------------------------------------- media ports

def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_refused_invite_holds_no_port(server_factory):
    """An INVITE the server refuses (unknown user, bad SDP) never takes an RTP port: with a range
    of one port pair, a refused call in between leaves it to the next caller."""
    pair = next(p for p in range(32000, 32700, 2) if _port_free(p) and _port_free(p + 1))
    srv = server_factory(extra_args=["--rtp-ports", f"{pair}-{pair + 1}"])
    cust = srv.new_customer()
    conf = cust.create_conference()
    for _ in range(3):
        code, _ = sip_request(srv.sip_port, "INVITE", f"sip:nobody@127.0.0.1:{srv.sip_port}",
                              sdp=pcmu_offer())
        assert code == 404
        code, _ = sip_request(srv.sip_port, "INVITE",
                              f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}",
                              sdp="v=0\r\nm=video 4000 RTP/AVP 96\r\n")
        assert code == 488
    raw = RawCall(srv.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
    try:
        assert raw.connect() == 200 and raw.remote_media == pair
    finally:
        raw.hangup()
        raw.close()
