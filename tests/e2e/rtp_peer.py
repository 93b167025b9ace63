"""Raw RTP endpoints for end-to-end media tests: PCMU (G.711 mu-law) in pure Python, a peer
socket on any loopback address that sends a tone and decodes what it receives, a pacer thread
that sends one 20 ms frame per peer and drains them all, and a SIP caller whose SDP names an RTP
address of the test's choosing (for NAT and spoofing cases). No external tools."""

import math
import random
import socket
import threading
import time

from phones import RawCall, pcmu_offer, tone_level

FRAME = 160  # samples per 20 ms at 8 kHz


def _ulaw_encode_one(x):
    bias, clip = 0x84, 32635
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not (x & mask):
        exp -= 1
        mask >>= 1
    mant = (x >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def _ulaw_decode_one(u):
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if (u & 0x80) else (t - 0x84)


_DECODE = [_ulaw_decode_one(u) for u in range(256)]


def ulaw_encode(samples):
    return bytes(_ulaw_encode_one(int(s)) for s in samples)


def ulaw_decode(data):
    return [_DECODE[b] for b in data]


def tone_frames(hz, amplitude=8000):
    """An endless generator of 20 ms PCMU frames of a tone (silence at hz=0)."""
    phase = 0.0
    step = 2.0 * math.pi * hz / 8000.0
    silence = ulaw_encode([0] * FRAME)
    while True:
        if hz <= 0:
            yield silence
            continue
        pcm = []
        for _ in range(FRAME):
            pcm.append(amplitude * math.sin(phase))
            phase += step
        yield ulaw_encode(pcm)


class RtpPeer:
    """A UDP socket on ip that sends one stream (one SSRC, consecutive sequence numbers) and keeps
    the decoded audio it receives, with the addresses it came from."""

    def __init__(self, ip="127.0.0.1", hz=0.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.ip = ip
        self.port = self.sock.getsockname()[1]
        self.frames = tone_frames(hz)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self.heard = []
        self.packets = 0
        self.lock = threading.Lock()

    def send(self, port, ip="127.0.0.1"):
        hdr = bytes([0x80, 0]) + self.seq.to_bytes(2, "big") + self.ts.to_bytes(4, "big") + \
            self.ssrc.to_bytes(4, "big")
        try:
            self.sock.sendto(hdr + next(self.frames), (ip, port))
        except OSError:
            pass
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME) & 0xFFFFFFFF

    def drain(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except (BlockingIOError, OSError):
                return
            if len(data) == 12 + FRAME:
                with self.lock:
                    self.packets += 1
                    self.heard.extend(ulaw_decode(data[12:]))

    def forget(self):
        with self.lock:
            self.heard = []
            self.packets = 0

    def level(self, hz, window_s=0.5):
        """The loudest the tone is over consecutive windows of what was heard."""
        with self.lock:
            x = list(self.heard)
        w = int(8000 * window_s)
        best = 0.0
        for start in range(0, max(1, len(x) - w + 1), w):
            best = max(best, tone_level(x[start:start + w], 8000, hz))
        return best

    def close(self):
        self.sock.close()


class Pacer:
    """Every 20 ms: each (peer, port) in sends sends a frame; every peer in drains is drained.
    The lists may be changed while it runs (under pacer.lock)."""

    def __init__(self):
        self.sends = []
        self.drains = []
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def add_send(self, peer, port):
        with self.lock:
            self.sends.append((peer, port))

    def add_drain(self, peer):
        with self.lock:
            self.drains.append(peer)

    def run(self):
        nxt = time.monotonic()
        while not self.stop_flag:
            with self.lock:
                sends, drains = list(self.sends), list(self.drains)
            for peer, port in sends:
                peer.send(port)
            for peer in drains:
                peer.drain()
            nxt += 0.02
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    def stop(self):
        self.stop_flag = True
        if self.thread.is_alive():
            self.thread.join(timeout=5)


class SdpCall(RawCall):
    """A RawCall whose SDP names sdp_ip:sdp_port (default: its own RTP peer's address)."""

    def __init__(self, sip_port, ruri, sdp_port, sdp_ip="127.0.0.1"):
        super().__init__(sip_port, ruri)
        self.sdp_ip = sdp_ip
        self.sdp_port = sdp_port

    def offer(self):
        return pcmu_offer(self.sdp_port).replace("c=IN IP4 127.0.0.1", f"c=IN IP4 {self.sdp_ip}")
