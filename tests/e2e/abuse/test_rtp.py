"""The RTP spray: an attacker on another address sends RTP (one in-sequence stream per port, as a
real phone would) at every port of the RTP range, before and during a call. A leg used to latch
to the first packet from anyone, and ports were handed out in order: the attacker took over the
new caller's audio and received the conference's. Now the address the SDP named always takes its
leg (back), a stream from elsewhere is learned only while the expected source is silent, and
ports are drawn at random."""

import random
import re
import socket
import threading
import time

from conftest import ok, wait_until
from rtp_peer import FRAME, Pacer, RtpPeer, SdpCall, tone_frames


class Spray:
    """Sends a 1800 Hz PCMU stream to every even port of [lo, hi] from 127.0.0.3, 50 packets per
    second per port, and counts what comes back."""

    def __init__(self, lo, hi):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.3", 0))
        self.sock.setblocking(False)
        self.ports = list(range(lo + (lo & 1), hi, 2))
        self.state = {p: [random.getrandbits(16), random.getrandbits(32), random.getrandbits(32)]
                      for p in self.ports}
        self.frames = tone_frames(1800)
        self.received = 0
        self.sent = 0
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        nxt = time.monotonic()
        while not self.stop_flag:
            frame = next(self.frames)
            for p in self.ports:
                st = self.state[p]
                hdr = bytes([0x80, 0]) + st[0].to_bytes(2, "big") + st[1].to_bytes(4, "big") + \
                    st[2].to_bytes(4, "big")
                try:
                    self.sock.sendto(hdr + frame, ("127.0.0.1", p))
                    self.sent += 1
                except OSError:
                    pass
                st[0] = (st[0] + 1) & 0xFFFF
                st[1] = (st[1] + FRAME) & 0xFFFFFFFF
            while True:
                try:
                    self.sock.recvfrom(2048)
                    self.received += 1
                except (BlockingIOError, OSError):
                    break
            nxt += 0.02
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag = True
        self.thread.join(timeout=5)
        self.sock.close()


def _joined(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    return [i for i in c["conferencecall_ids"]
            if ok(api.get(f"/v1.0/conferencecalls/{i}"))["status"] == "joined"]


def test_rtp_spray_does_not_take_calls(server_factory):
    t_start = time.monotonic()
    lo = random.randrange(40000, 49800, 2)
    hi = lo + 99
    srv = server_factory("spray", extra_args=["--rtp-ports", f"{lo}-{hi}"])
    cust = srv.new_customer()
    conf = cust.create_conference(name="sprayed")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}"
    spray = Spray(lo, hi).start()
    caller = RtpPeer("127.0.0.1", hz=440)
    listener = RtpPeer("127.0.0.1", hz=0)
    a = SdpCall(srv.sip_port, ruri, caller.port)
    b = SdpCall(srv.sip_port, ruri, listener.port)
    pacer = Pacer()
    try:
        time.sleep(0.3)
        assert a.connect() == 200 and b.connect() == 200
        # The phones start their media a little late: the spray reaches the new legs first.
        time.sleep(0.4)
        pacer.add_send(caller, a.remote_media)
        pacer.add_send(listener, b.remote_media)
        pacer.add_drain(caller)
        pacer.add_drain(listener)
        pacer.start()
        wait_until(lambda: len(_joined(cust.api, conf["id"])) == 2, 10, what="both joined")
        time.sleep(0.5)
        caller.forget()
        listener.forget()
        before = spray.received
        time.sleep(3)
        assert listener.level(440) > 2000, listener.level(440)  # the caller reaches the room
        assert listener.level(1800) < 300, listener.level(1800)  # the attacker does not
        assert caller.level(1800) < 300, caller.level(1800)
        assert caller.packets > 100 and listener.packets > 100
        assert spray.received - before <= 2, spray.received - before  # nothing goes to it
        assert spray.sent > 5000

        # everyone else is still served while the spray goes on
        assert srv.alive()
        other = srv.new_customer()
        other.create_conference(name="unbothered")
        ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))
        a.hangup()
        b.hangup()
    finally:
        pacer.stop()
        spray.stop()
        for x in (a, b, caller, listener):
            x.close()
    assert srv.stop() == 0
    stats = [l for l in srv.all_logs().splitlines() if "media stats" in l][-1]
    refused = int(re.search(r"rtp_refused=(\d+)", stats).group(1))
    assert refused > 0, stats
    assert time.monotonic() - t_start < 60


def test_rtp_spray_does_not_take_a_nat_caller(server_factory):
    """A caller behind a NAT: its SDP names an address it does not send from, so its leg must
    learn where its RTP really comes from. The spray reaches the leg first; it must not be
    learned, because learning takes only senders at the SDP's address or the call's SIP source."""
    lo = random.randrange(40000, 49800, 2)
    hi = lo + 99
    srv = server_factory("spraynat", extra_args=["--rtp-ports", f"{lo}-{hi}"])
    cust = srv.new_customer()
    conf = cust.create_conference(name="nat")
    ruri = f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}"
    spray = Spray(lo, hi).start()
    caller = RtpPeer("127.0.0.1", hz=440)
    listener = RtpPeer("127.0.0.1", hz=0)
    a = SdpCall(srv.sip_port, ruri, 30000, sdp_ip="192.0.2.55")  # a private address behind a NAT
    b = SdpCall(srv.sip_port, ruri, listener.port)
    pacer = Pacer()
    try:
        time.sleep(0.3)
        assert a.connect() == 200 and b.connect() == 200
        time.sleep(0.6)  # the spray has sent far more than 4 packets to both legs by now
        pacer.add_send(caller, a.remote_media)
        pacer.add_send(listener, b.remote_media)
        pacer.add_drain(caller)
        pacer.add_drain(listener)
        pacer.start()
        wait_until(lambda: len(_joined(cust.api, conf["id"])) == 2, 10, what="both joined")
        time.sleep(0.5)
        caller.forget()
        listener.forget()
        time.sleep(3)
        assert listener.level(440) > 2000, listener.level(440)  # the NAT caller was learned
        assert listener.level(1800) < 300, listener.level(1800)  # the attacker was not
        assert caller.packets > 100, caller.packets  # and the mix goes back to where it sends from
        a.hangup()
        b.hangup()
    finally:
        pacer.stop()
        spray.stop()
        for x in (a, b, caller, listener):
            x.close()
