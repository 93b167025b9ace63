"""SIP over WebSocket (RFC 7118) on the HTTP port: a scripted UAC over websocket-client, writing
what JsSIP writes (a made-up ".invalid" Via host with transport WSS, a Contact with
;transport=ws), dials a conference's direct URI with a plain-RTP offer. The subprotocol is
negotiated; 100 and 200 (with the server's SDP) come back over the socket, nothing is
retransmitted on it; the call is a call record and a participant; its RTP is mixed with a baresip
phone in the same room; BYE over the socket ends it, and so does closing the socket. Malformed
frames, oversize messages and too many connections get clear errors and the server lives on."""

import http.client
import random
import socket
import struct
import time

import pytest
import websocket

from conftest import Resp, err, http_raw, ok, wait_until
from phones import Phone, have_baresip, make_tone, max_tone_level, pcmu_offer, sip_request


def _rand(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def parse_sip(text):
    """(start line, {lower-case header: [values]}, body) of one SIP message."""
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


class WsUac:
    """A SIP user agent over one WebSocket, as a browser softphone is."""

    def __init__(self, server, path="/sip", subprotocols=("sip",)):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}",
                                              subprotocols=list(subprotocols), timeout=5)
        self.host = _rand(12) + ".invalid"
        self.user = _rand(8)
        self.tag = _rand()
        self.call_id = _rand(20)
        self.cseq = random.randint(1000, 9000)
        self.to = None         # the To header with the server's tag, once answered
        self.target = None     # the server's Contact URI
        self.invite_cseq = None
        self.pending = []      # requests from the server not yet consumed by expect_request

    def send(self, lines, body="", binary=False):
        text = "\r\n".join(lines + [f"Content-Length: {len(body.encode())}"]) + "\r\n\r\n" + body
        if binary:
            self.ws.send_binary(text.encode())
        else:
            self.ws.send(text)

    def recv(self, timeout=5.0):
        """The next SIP message (parsed), or None when nothing arrives in time."""
        self.ws.settimeout(timeout)
        try:
            data = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        if isinstance(data, bytes):
            data = data.decode()
        return parse_sip(data)

    def via(self):
        return f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK{_rand(16)}"

    def request(self, method, ruri, cseq, body="", extra=(), to=None):
        lines = [f"{method} {ruri} SIP/2.0", self.via(), "Max-Forwards: 69",
                 to or self.to or f"To: <{ruri}>",
                 f'From: "Web" <sip:{self.user}@127.0.0.1>;tag={self.tag}',
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{self.user}@{self.host};transport=ws;ob>",
                 "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
                 "Supported: timer,ice,replaces,outbound", "User-Agent: JsSIP 3.10.1"]
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        self.send(lines, body)

    def response_to(self, cseq_method, timeout=5.0):
        """The next response whose CSeq method is cseq_method (requests are kept for later)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(max(0.05, deadline - time.monotonic()))
            if m is None:
                return None
            if m[0].startswith("SIP/2.0 "):
                if m[1]["cseq"][0].split()[1] == cseq_method:
                    return m
            else:
                self.pending.append(m)
        return None

    def invite(self, ruri, sdp):
        self.invite_cseq = self.cseq
        self.request("INVITE", ruri, self.cseq, sdp)
        self.cseq += 1
        codes = []
        while True:
            m = self.response_to("INVITE")
            assert m is not None, f"no final answer; got {codes}"
            code = int(m[0].split()[1])
            codes.append(code)
            if code >= 200:
                break
        if 200 <= code < 300:
            self.to = "To: " + m[1]["to"][0]
            self.target = m[1]["contact"][0].strip("<>")
        return codes, m

    def ack(self):
        self.request("ACK", self.target, self.invite_cseq)

    def bye(self):
        self.request("BYE", self.target, self.cseq)
        self.cseq += 1
        return self.response_to("BYE")

    def expect_request(self, method, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.pending:
                if m[0].startswith(method + " "):
                    self.pending.remove(m)
                    return m
            m = self.recv(max(0.05, deadline - time.monotonic()))
            if m is not None:
                self.pending.append(m)
        return None

    def answer(self, m, code=200, reason="OK"):
        """Answers a request from the server, copying what a response copies."""
        h = m[1]
        lines = [f"SIP/2.0 {code} {reason}"] + [f"Via: {v}" for v in h["via"]]
        lines += [f"From: {h['from'][0]}", f"To: {h['to'][0]}", f"Call-ID: {h['call-id'][0]}",
                  f"CSeq: {h['cseq'][0]}"]
        self.send(lines)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def _joined(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    ccs = [ok(api.get(f"/v1.0/conferencecalls/{i}")) for i in c["conferencecall_ids"]]
    return [cc for cc in ccs if cc["status"] == "joined"]


def _ws_call(api, call_id_part):
    """The call record whose destination names call_id_part (the direct hash)."""
    for c in ok(api.get("/v1.0/calls"))["result"]:
        if call_id_part in c["destination"]["target"] and c["direction"] == "incoming":
            return c
    return None


def _media(sdp):
    ip = port = None
    for line in sdp.split("\r\n"):
        if line.startswith("c=IN IP4 "):
            ip = line.split()[2]
        if line.startswith("m=audio "):
            port = int(line.split()[1])
    return ip, port


def _call_status(api, call_id):
    return ok(api.get(f"/v1.0/calls/{call_id}"))["status"]


def test_subprotocol_and_options(server):
    uac = WsUac(server)
    try:
        assert uac.ws.getsubprotocol() == "sip"
        assert uac.ws.getstatus() == 101
        uac.request("OPTIONS", f"sip:127.0.0.1:{server.port}", 1)
        m = uac.response_to("OPTIONS")
        assert m and m[0] == "SIP/2.0 200 OK", m
        assert "INVITE" in m[1]["allow"][0] and m[1]["via"][0].startswith("SIP/2.0/WSS " + uac.host)
        # one SIP message per binary frame is taken too; CRLF keep-alives are answered
        uac.send([f"OPTIONS sip:127.0.0.1 SIP/2.0", uac.via(), f"To: <sip:127.0.0.1>",
                  f"From: <sip:{uac.user}@127.0.0.1>;tag={uac.tag}", f"Call-ID: {_rand()}",
                  "CSeq: 2 OPTIONS"], binary=True)
        m = uac.response_to("OPTIONS")
        assert m and m[0] == "SIP/2.0 200 OK", m
        uac.ws.send("\r\n\r\n")
        uac.ws.settimeout(5)
        assert uac.ws.recv() == "\r\n"
    finally:
        uac.close()
    # any path, when the client offers the sip subprotocol (as JsSIP is given a URL)
    other = WsUac(server, path="/anything/ws")
    try:
        assert other.ws.getsubprotocol() == "sip"
        other.request("OPTIONS", "sip:127.0.0.1", 1)
        assert other.response_to("OPTIONS")[0] == "SIP/2.0 200 OK"
    finally:
        other.close()


UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]


def _upgrade(port, path="/sip", protocol="sip"):
    """The answer to a raw upgrade request (an error, or 101 and then the socket is closed)."""
    headers = UPGRADE + ([("Sec-WebSocket-Protocol", protocol)] if protocol else [])
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + \
        "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(head.encode())
        resp = http.client.HTTPResponse(sock, method="GET")
        resp.begin()
        body = resp.read() if resp.status != 101 else b""
        return Resp(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        sock.close()


def test_upgrade_refused_clearly(server):
    # /sip without the subprotocol, and without an upgrade at all
    e = err(_upgrade(server.port, protocol=None), 400, "INVALID_ARGUMENT", "SIP_SUBPROTOCOL_REQUIRED")
    assert "Sec-WebSocket-Protocol: sip" in e["message"], e
    err(http_raw(server.port, "GET", "/sip"), 400, "INVALID_ARGUMENT", "WEBSOCKET_REQUIRED")
    # the event stream is not SIP: it still wants its credentials
    err(_upgrade(server.port, path="/v1.0/ws", protocol=None), 401)


def test_call_in_a_room_then_bye(server, customer, tmp_path):
    """A WS caller and a baresip phone in one room hear each other; BYE over the socket ends the
    call and the participant leaves."""
    from rtp_peer import Pacer, RtpPeer
    api = customer.api
    conf = customer.create_conference(name="sip-ws")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1"
    phone = None
    if have_baresip():
        wav = tmp_path / "phone.wav"
        make_tone(wav, 700, seconds=40)
        phone = Phone(tmp_path, "phone", wav).dial(f"{ruri}:{server.sip_port}", seconds=45)
        wait_until(lambda: len(_joined(api, conf["id"])) == 1, 15, what="the phone joined")
    peer = RtpPeer("127.0.0.1", hz=440)
    pacer = Pacer()
    uac = WsUac(server)
    try:
        codes, ok200 = uac.invite(ruri, pcmu_offer(peer.port))
        assert codes[0] == 100 and codes[-1] == 200, codes
        start, h, body = ok200
        assert h["via"][0].startswith(f"SIP/2.0/WSS {uac.host};branch="), h["via"]
        assert h["content-type"][0] == "application/sdp"
        assert ";transport=ws" in h["contact"][0], h["contact"]
        assert f":{server.port};" in h["contact"][0], h["contact"]
        ip, port = _media(body)
        assert ip == "127.0.0.1" and port > 0, body
        # a reliable transport: the 200 is not retransmitted while the ACK is awaited
        assert uac.response_to("INVITE", timeout=2.5) is None
        uac.ack()

        wait_until(lambda: len(_joined(api, conf["id"])) == (2 if phone else 1), 15,
                   what="the WebSocket caller joined")
        call = wait_until(lambda: _ws_call(api, conf["direct_hash"]), 5, what="the call record")
        assert call["status"] == "progressing" and call["source"]["target"].startswith(
            f"sip:{uac.user}@"), call
        assert any(cc["reference_id"] == call["id"] for cc in _joined(api, conf["id"]))

        # an in-dialog re-INVITE (hold) over the socket is answered there
        uac.invite_cseq = uac.cseq
        uac.request("INVITE", uac.target, uac.cseq, pcmu_offer(peer.port).replace("sendrecv", "sendonly"))
        uac.cseq += 1
        m = uac.response_to("INVITE")
        while m and int(m[0].split()[1]) < 200:
            m = uac.response_to("INVITE")
        assert m and m[0] == "SIP/2.0 200 OK" and "a=recvonly" in m[2], m
        uac.ack()
        uac.request("INVITE", uac.target, uac.cseq, pcmu_offer(peer.port))
        uac.invite_cseq = uac.cseq
        uac.cseq += 1
        m = uac.response_to("INVITE")
        while m and int(m[0].split()[1]) < 200:
            m = uac.response_to("INVITE")
        assert m and m[0] == "SIP/2.0 200 OK" and "a=sendrecv" in m[2], m
        uac.ack()

        pacer.add_send(peer, port)
        pacer.add_drain(peer)
        pacer.start()
        if phone:
            time.sleep(1.0)
            peer.forget()
            time.sleep(3.0)
            assert peer.packets > 100, peer.packets
            assert peer.level(700) > 2000, peer.level(700)  # hears the phone
            assert peer.level(440) < 300, peer.level(440)   # never itself
        else:
            time.sleep(1.0)
            assert peer.packets > 20, peer.packets           # the room sends it its (silent) mix

        m = uac.bye()
        assert m and m[0] == "SIP/2.0 200 OK", m
        wait_until(lambda: _call_status(api, call["id"]) == "hangup", 10, what="call hung up")
        c = ok(api.get(f"/v1.0/calls/{call['id']}"))
        assert c["hangup_by"] == "remote" and c["hangup_reason"] == "normal", c
        wait_until(lambda: all(cc["reference_id"] != call["id"] for cc in _joined(api, conf["id"])),
                   10, what="the participant left")
    finally:
        pacer.stop()
        uac.close()
        peer.close()
        if phone:
            phone.stop()
    if phone:
        x, rate = phone.heard()
        assert max_tone_level(x, rate, 440) > 1500, "the phone does not hear the WebSocket caller"


@pytest.mark.parametrize("how", ["close_frame", "tcp_reset"])
def test_closing_the_socket_hangs_up(server, customer, how):
    api = customer.api
    conf = customer.create_conference(name="ws-close")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1"
    uac = WsUac(server)
    try:
        codes, _ = uac.invite(ruri, pcmu_offer(41000))
        assert codes[-1] == 200, codes
        uac.ack()
        wait_until(lambda: len(_joined(api, conf["id"])) == 1, 10, what="joined")
        call = _ws_call(api, conf["direct_hash"])
        if how == "close_frame":
            uac.ws.close()
        else:
            uac.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            uac.ws.sock.close()
        wait_until(lambda: _call_status(api, call["id"]) == "hangup", 10, what="call hung up")
        c = ok(api.get(f"/v1.0/calls/{call['id']}"))
        assert c["hangup_by"] == "remote", c
        wait_until(lambda: not _joined(api, conf["id"]), 10, what="the participant left")
    finally:
        uac.close()
    assert server.alive()


def test_kick_sends_bye_over_the_socket(server, customer):
    api = customer.api
    conf = customer.create_conference(name="ws-kick")
    uac = WsUac(server)
    try:
        codes, _ = uac.invite(f"sip:{conf['direct_hash']}@127.0.0.1", pcmu_offer(41002))
        assert codes[-1] == 200
        uac.ack()
        cc = wait_until(lambda: _joined(api, conf["id"]), 10, what="joined")[0]
        ok(api.delete(f"/v1.0/conferencecalls/{cc['id']}"))
        bye = uac.expect_request("BYE")
        assert bye is not None, "no BYE over the socket"
        assert bye[1]["via"][0].startswith("SIP/2.0/WS "), bye[1]["via"]
        assert bye[0].startswith(f"BYE sip:{uac.user}@{uac.host};transport=ws"), bye[0]
        uac.answer(bye)
        wait_until(lambda: _call_status(api, cc["reference_id"]) == "hangup", 10, what="hung up")
    finally:
        uac.close()


def test_bad_input_and_limits(server_factory):
    srv = server_factory("sipws-limits", extra_args=("--sip-ws-max-connections", "2",
                                                     "--sip-ws-max-message", "2048"))
    # not SIP: the connection is closed with 1008 and says why
    uac = WsUac(srv)
    uac.ws.send("hello, is this SIP?")
    uac.ws.settimeout(5)
    op, data = uac.ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE, (op, data)
    assert int.from_bytes(data[:2], "big") == 1008 and b"not a SIP message" in data, data
    uac.close()
    # a SIP request that lacks what an answer needs: 400 over the socket, the connection lives
    uac = WsUac(srv)
    uac.send(["INVITE sip:x@127.0.0.1 SIP/2.0", uac.via(), "To: <sip:x@127.0.0.1>",
              f"Call-ID: {_rand()}", "CSeq: 1 INVITE"])
    m = uac.response_to("INVITE")
    assert m and m[0].startswith("SIP/2.0 400"), m
    # larger than sip_ws_max_message: closed with 1009 naming the setting
    uac.request("OPTIONS", "sip:127.0.0.1", 2, extra=["X-Padding: " + "a" * 3000])
    op, data = uac.ws.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1009, data
    assert b"sip_ws_max_message" in data, data
    uac.close()
    # too many connections: the third upgrade is refused before it happens
    a, b = WsUac(srv), WsUac(srv)
    try:
        e = err(_upgrade(srv.port), 503, "UNAVAILABLE", "TOO_MANY_SIP_CONNECTIONS")
        assert "sip_ws_max_connections" in e["message"], e
        a.request("OPTIONS", "sip:127.0.0.1", 1)  # the two open ones are served as before
        assert a.response_to("OPTIONS")[0] == "SIP/2.0 200 OK"
    finally:
        a.close()
        b.close()
    # the connections are counted down when they close
    c = wait_until(lambda: _try_connect(srv), 5, what="a connection after the others closed")
    c.close()
    # a frame that is not WebSocket at all: the server closes, and lives on
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /sip HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: sip\r\n\r\n")
    head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Protocol: sip" in head, head
    s.sendall(bytes(random.getrandbits(8) for _ in range(4000)))
    s.close()
    time.sleep(0.5)
    assert srv.alive()
    code, _ = sip_request(srv.sip_port, "OPTIONS", f"sip:127.0.0.1:{srv.sip_port}")
    assert code == 200


def _try_connect(srv):
    try:
        return WsUac(srv)
    except websocket.WebSocketBadStatusException:
        return None
