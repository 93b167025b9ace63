"""Real SIP phones for end-to-end tests: headless baresip instances, plus tone analysis of what
they recorded. Each phone has its own config dir, SIP port, RTP port range and recordings; every
process is stopped by its PID."""

import glob
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import wave

from conftest import ok, wait_until


def free_udp_port_block(size=20):
    """A base port such that base..base+size-1 look free for UDP and TCP on loopback."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        base -= base % 2
        if base + size >= 65535:
            continue
        ok = True
        for p in range(base, base + size):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # baresip binds both
                t = socket.socket(socket.AF_INET, kind)
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                finally:
                    t.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free UDP port block")


def make_tone(path, hz, seconds=40, volume=0.25):
    """An 8 kHz mono 16-bit WAV with a pure tone (sox)."""
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", str(hz), "vol", str(volume)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def make_tones(path, tones, seconds=40, rate=16000, amplitude=6000, channels=1):
    """A 16-bit WAV at rate holding the sum of the given tones (Hz), each at amplitude (the same
    in every channel)."""
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        v = sum(amplitude * math.sin(2 * math.pi * hz * i / rate) for hz in tones)
        frames += int(max(-32768, min(32767, round(v)))).to_bytes(2, "little", signed=True) * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


# What a phone offers (baresip's audio_codecs) and the module that has it.
CODECS = {"PCMU": ("PCMU", "g711.so"), "PCMA": ("PCMA", "g711.so"), "G722": ("G722", "g722.so"),
          "opus": ("opus/48000/2", "opus.so")}


class Phone:
    """One baresip user agent that dials out and plays a WAV as its microphone. codec: what it
    offers (PCMU by default; G722, opus)."""

    def __init__(self, root, name, source_wav, auto_answer=False, codec="PCMU"):
        self.name = name
        self.auto_answer = auto_answer
        self.dir = os.path.join(str(root), name)
        self.rec = os.path.join(self.dir, "rec")
        os.makedirs(self.rec, exist_ok=True)
        base = free_udp_port_block(24)
        self.sip_port = base
        self.ctrl_port = base + 2  # TCP
        self.rtp_lo, self.rtp_hi = base + 4, base + 22
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(f"""sip_listen 127.0.0.1:{self.sip_port}
net_interface 127.0.0.1
audio_player aubridge,nil
audio_source aufile,{source_wav}
audio_alert aubridge,nil
rtp_ports {self.rtp_lo}-{self.rtp_hi}
module_path /usr/lib/baresip/modules
module g711.so
{"module " + CODECS[codec][1] if CODECS[codec][1] != "g711.so" else ""}
module sndfile.so
module aufile.so
module aubridge.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
snd_path {self.rec}
""")
        answer = ";answermode=auto" if auto_answer else ""
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f"<sip:{name}@127.0.0.1:{self.sip_port}>;regint=0;audio_codecs={CODECS[codec][0]}{answer}\n")
        self.proc = None
        self.log_path = os.path.join(self.dir, "baresip.log")

    def dial(self, uri, seconds=60):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", self.dir, "-t", str(seconds), "-e", f"/dial {uri}"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return self

    @property
    def uri(self):
        """Where to reach this phone (for auto-answer phones)."""
        return f"sip:{self.name}@127.0.0.1:{self.sip_port}"

    def listen(self, seconds=60):
        """Starts the phone without dialling (auto-answer phones wait for a call)."""
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["baresip", "-f", self.dir, "-t", str(seconds)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready once its control port answers
            try:
                socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.name}: baresip did not start\n{self.log()}")

    def command(self, command, params=""):
        """Sends one command over ctrl_tcp (netstring-framed JSON)."""
        import json as _json
        body = _json.dumps({"command": command, "params": params, "token": "t"}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as c:
            c.sendall(str(len(body)).encode() + b":" + body + b",")
            c.settimeout(2)
            try:
                c.recv(4096)
            except OSError:
                pass

    def send_digits(self, digits, gap=0.4):
        """Key presses in the call (RFC 4733 telephone-events), one at a time."""
        for d in digits:
            self.command("sndcode", d)
            time.sleep(gap)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def heard(self):
        """Samples (ints) of what the phone received, from its -dec.wav recording."""
        files = sorted(glob.glob(os.path.join(self.rec, "*-dec.wav")))
        if not files:
            return [], 8000
        return read_wav(files[-1])


def joined(api, conf_id):
    """The ids of the conference's participants that are joined now."""
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    return [i for i in c["conferencecall_ids"]
            if ok(api.get(f"/v1.0/conferencecalls/{i}"))["status"] == "joined"]


def record_room(api, conf_id, seconds, path):
    """Records the conference for seconds and writes the recording's WAV to path."""
    rec_id = ok(api.post(f"/v1.0/conferences/{conf_id}/recording_start", {}))["recording_id"]
    time.sleep(seconds)
    ok(api.post(f"/v1.0/conferences/{conf_id}/recording_stop", {}))
    wait_until(lambda: ok(api.get(f"/v1.0/recordings/{rec_id}"))["status"] == "ended", 10,
               what="recording ended")
    r = api.get(f"/v1.0/recordingfiles/{rec_id}")
    assert r.status == 200, r
    with open(path, "wb") as f:
        f.write(r.body)


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        n = w.getnframes()
        data = w.readframes(n)
        width = w.getsampwidth()
        channels = w.getnchannels()
    if width != 2:
        raise AssertionError(f"{path}: {width}-byte samples")
    step = 2 * channels  # the first channel of each frame
    samples = [int.from_bytes(data[i:i + 2], "little", signed=True) for i in range(0, len(data), step)]
    return samples, rate


def tone_level(x, rate, hz):
    """Goertzel amplitude of a tone at hz over x (normalised to the sine amplitude)."""
    n = len(x)
    if n == 0:
        return 0.0
    k = 2.0 * math.cos(2.0 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + k * s1 - s2
        s2 = s1
        s1 = s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return 2.0 * math.sqrt(max(power, 0.0)) / n


def max_tone_level(x, rate, hz, window_s=0.5):
    """The loudest the tone gets over consecutive windows (phones join at different times)."""
    w = int(rate * window_s)
    best = 0.0
    for start in range(0, max(1, len(x) - w + 1), w):
        best = max(best, tone_level(x[start:start + w], rate, hz))
    return best


def have_baresip():
    return shutil.which("baresip") is not None and shutil.which("sox") is not None


def sip_request(sip_port, method, ruri, sdp=None, timeout=5.0, extra_headers=()):
    """Sends one SIP request over UDP from a fresh socket and returns the final status code (and
    the response text). For INVITE, a non-2xx final answer is ACKed (RFC 3261 17.1.1.3); a 2xx is
    ACKed and then ended with BYE so no call is left behind."""
    import random
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    branch = "z9hG4bK" + "%08x" % random.getrandbits(32)
    tag = "%08x" % random.getrandbits(32)
    call_id = "%016x@127.0.0.1" % random.getrandbits(64)
    body = sdp or ""
    head = [f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:tester@127.0.0.1:{lport}>;tag={tag}",
            f"To: <{ruri}>",
            f"Call-ID: {call_id}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:tester@127.0.0.1:{lport}>"]
    head += list(extra_headers)
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body.encode())}")
    msg = ("\r\n".join(head) + "\r\n\r\n" + body).encode()
    s.settimeout(0.5)
    deadline = time.monotonic() + timeout
    final = None
    text = ""
    next_send = 0.0
    while time.monotonic() < deadline and final is None:
        if time.monotonic() >= next_send:
            s.sendto(msg, ("127.0.0.1", sip_port))
            next_send = time.monotonic() + 0.5
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            continue
        text = data.decode("utf-8", "replace")
        code = int(text.split(" ", 2)[1])
        if code >= 200:
            final = code
    if final is not None and method == "INVITE":
        to_line = next((l for l in text.split("\r\n") if l.lower().startswith("to:")), f"To: <{ruri}>")
        if final >= 300:
            ack = [f"ACK {ruri} SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch};rport",
                   "Max-Forwards: 70", f"From: <sip:tester@127.0.0.1:{lport}>;tag={tag}", to_line,
                   f"Call-ID: {call_id}", "CSeq: 1 ACK", "Content-Length: 0"]
            s.sendto(("\r\n".join(ack) + "\r\n\r\n").encode(), ("127.0.0.1", sip_port))
        else:
            for m, cseq in (("ACK", "1 ACK"), ("BYE", "2 BYE")):
                req = [f"{m} {ruri} SIP/2.0",
                       f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{m}{tag};rport",
                       "Max-Forwards: 70", f"From: <sip:tester@127.0.0.1:{lport}>;tag={tag}", to_line,
                       f"Call-ID: {call_id}", f"CSeq: {cseq}", "Content-Length: 0"]
                s.sendto(("\r\n".join(req) + "\r\n\r\n").encode(), ("127.0.0.1", sip_port))
    s.close()
    return final, text


def pcmu_offer(port=40000):
    return ("v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


class RawCall:
    """A minimal SIP caller over a raw UDP socket: INVITE with a PCMU offer, ACK, then it can
    send RTP/telephone events to the answered media port, wait for the server's BYE, or hang
    up itself."""

    def __init__(self, sip_port, ruri):
        import random
        self.sip_port = sip_port
        self.ruri = ruri
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.lport = self.sip.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.tag = "%08x" % random.getrandbits(32)
        self.call_id = "%016x@raw" % random.getrandbits(64)
        self.to = None
        self.remote_media = None
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.last_bye = None  # the text of the last BYE wait_bye() answered
        self.answer = None  # the SDP of the 200

    def _send(self, lines, body=""):
        lines = lines + [f"Content-Length: {len(body.encode())}"]
        self.sip.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), ("127.0.0.1", self.sip_port))

    def _common(self, method, cseq, branch):
        return [f"{method} {self.ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.lport};branch=z9hG4bK{branch}{self.tag}",
                "Max-Forwards: 70", f"From: <sip:raw@127.0.0.1:{self.lport}>;tag={self.tag}",
                self.to or f"To: <{self.ruri}>", f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
                f"Contact: <sip:raw@127.0.0.1:{self.lport}>"]

    def offer(self):
        """The SDP of the INVITE: PCMU on this call's RTP socket."""
        return pcmu_offer(self.rtp.getsockname()[1])

    def connect(self, timeout=5.0, ack=True):
        """INVITE, then the final answer (a 2xx is ACKed unless ack=False: send_ack() later; a
        failure is ACKed at once, as RFC 3261 17.1.1.3 wants); returns the final status code."""
        import re
        self._send(self._common("INVITE", 1, "inv") + ["Content-Type: application/sdp"],
                   self.offer())
        self.sip.settimeout(timeout)
        while True:
            text = self.sip.recvfrom(65535)[0].decode()
            code = int(text.split(" ", 2)[1])
            if code >= 200:
                break
        self.to = next(l for l in text.split("\r\n") if l.lower().startswith("to:"))
        if code == 200:
            self.answer = text.split("\r\n\r\n", 1)[1]  # the SDP
            self.remote_media = int(re.search(r"m=audio (\d+)", text).group(1))
            if ack:
                self.send_ack()
        else:
            self._send(self._common("ACK", 1, "inv"))
        return code

    def send_ack(self):
        self._send(self._common("ACK", 1, "ack"))

    def send_rtp(self, pt, payload, marker=False):
        hdr = bytes([0x80, (0x80 if marker else 0) | pt]) + self.seq.to_bytes(2, "big") + \
            self.ts.to_bytes(4, "big") + (0x1234).to_bytes(4, "big")
        self.rtp.sendto(hdr + payload, ("127.0.0.1", self.remote_media))
        self.seq = (self.seq + 1) & 0xffff

    def send_dtmf(self, event, pt=101):
        """One key press as RFC 4733 telephone events: 5 updates then 3 end packets."""
        for i in range(8):
            end = i >= 5
            duration = min(i + 1, 6) * 160
            self.send_rtp(pt, bytes([event, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big"),
                          marker=(i == 0))
            time.sleep(0.02)
        self.ts = (self.ts + 6 * 160) & 0xffffffff

    def wait_bye(self, timeout):
        """Waits for the server's BYE and answers it 200; returns True when one came."""
        self.sip.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.sip.recvfrom(65535)[0].decode()
            except socket.timeout:
                return False
            if text.startswith("BYE "):
                self.last_bye = text
                headers = [l for l in text.split("\r\n") if l.split(":", 1)[0].lower() in
                           ("via", "from", "to", "call-id", "cseq", "v", "f", "t", "i")]
                self.sip.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(headers) +
                                 "\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", self.sip_port))
                return True
        return False

    def hangup(self):
        self._send(self._common("BYE", 2, "bye"))

    def close(self):
        self.sip.close()
        self.rtp.close()


def have_pocketsphinx():
    return shutil.which("pocketsphinx_continuous") is not None


def spoken_keywords(samples, rate, keywords, tmpdir, threshold="1e-20"):
    """Keywords pocketsphinx spots in telephone audio (upsampled to its 16 kHz model)."""
    raw = os.path.join(str(tmpdir), "kws-in.wav")
    with wave.open(raw, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(int(v).to_bytes(2, "little", signed=True) for v in samples))
    up = os.path.join(str(tmpdir), "kws-16k.wav")
    subprocess.run(["sox", raw, "-r", "16000", up], check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kws = os.path.join(str(tmpdir), "kws.list")
    with open(kws, "w") as f:
        for k in keywords:
            f.write(f"{k} /{threshold}/\n")
    out = subprocess.run(["pocketsphinx_continuous", "-infile", up, "-kws", kws, "-dither", "yes"],
                         capture_output=True, text=True, timeout=120).stdout
    return set(out.split())


class ScriptedUas:
    """A minimal SIP endpoint on a UDP socket that answers INVITEs with 100, 180 (ring=True) and
    the final code: None rings until CANCEL (then 200 + 487), 200 answers with a PCMU SDP and
    then sends no RTP (BYE: 200); silent=True answers nothing at all. got lists the methods."""

    def __init__(self, final=486, ring=True, silent=False):
        import threading
        self.final = final
        self.ring = ring
        self.silent = silent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def uri(self):
        return f"sip:uas@127.0.0.1:{self.port}"

    @staticmethod
    def headers(msg):
        out = {}
        for line in msg.split("\r\n")[1:]:
            if not line:
                break
            k, _, v = line.partition(":")
            out.setdefault(k.strip().lower(), v.strip())
        return out

    def reply(self, msg, addr, code, text, to_tag=True, body=""):
        h = self.headers(msg)
        to = h.get("to", "")
        if to_tag and ";tag=" not in to:
            to += ";tag=uas1"
        lines = [f"SIP/2.0 {code} {text}", f"Via: {h.get('via', '')}", f"From: {h.get('from', '')}",
                 f"To: {to}", f"Call-ID: {h.get('call-id', '')}", f"CSeq: {h.get('cseq', '')}",
                 f"Contact: <sip:uas@127.0.0.1:{self.port}>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"Content-Length: {len(body)}", "", body]
        self.sock.sendto("\r\n".join(lines).encode(), addr)

    def run(self):
        invite = None
        while not self.stop_flag:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = data.decode("utf-8", "replace")
            method = msg.split(" ", 1)[0]
            self.got.append(method)
            if self.silent:
                continue
            if method == "INVITE":
                invite = msg
                self.reply(msg, addr, 100, "Trying", to_tag=False)
                if self.ring:
                    self.reply(msg, addr, 180, "Ringing")
                if self.final == 200:
                    self.reply(msg, addr, 200, "OK", body=pcmu_offer(self.port + 2))
                elif self.final:
                    self.reply(msg, addr, self.final, "Final")
            elif method == "CANCEL":
                self.reply(msg, addr, 200, "OK")
                if invite:
                    self.reply(invite, addr, 487, "Request Terminated")
            elif method == "BYE":
                self.reply(msg, addr, 200, "OK")

    def close(self):
        self.stop_flag = True
        self.thread.join(timeout=2)
        self.sock.close()
