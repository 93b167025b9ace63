"""Live transcription (SPEC §5): each participant of a conference is recognised on their own, on
the machine (pocketsphinx), with who said it; live transcript_created events; the rules of
transcribe_start/stop and /v1.0/transcribes; a WebRTC (Opus) speaker; a call's own audio and
what it hears; the flow actions; an external recogniser speaking the whisper.cpp request shape."""

import email.parser
import email.policy
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import wave

import pytest

from conftest import NIL_UUID, err, ok, parse_ts, wait_until, ws_collect, ws_connect
from phones import Phone, have_baresip
from webrtc_peer import WebRtcCall, have_aiortc

needs_speech = pytest.mark.skipif(
    not (have_baresip() and shutil.which("flite") and shutil.which("sox")),
    reason="baresip, flite and sox are needed")

TRANSCRIBE_FIELDS = {"id", "customer_id", "activeflow_id", "on_end_flow_id", "reference_type",
                     "reference_id", "status", "language", "direction", "provider", "skipped",
                     "tm_create", "tm_update", "tm_delete"}
TRANSCRIPT_FIELDS = {"id", "customer_id", "transcribe_id", "direction", "message", "tm_transcript",
                     "tm_create", "conferencecall_id", "call_id", "tm_end", "offset_ms",
                     "confidence"}


def check_transcribe(t):
    missing = TRANSCRIBE_FIELDS - set(t)
    assert not missing, f"transcribe lacks {sorted(missing)}: {t}"
    assert t["status"] in ("progressing", "done"), t
    assert t["provider"] == "", t
    assert isinstance(t["skipped"], int), t
    return t


def check_transcript(t):
    missing = TRANSCRIPT_FIELDS - set(t)
    assert not missing, f"transcript lacks {sorted(missing)}: {t}"
    assert 0 <= t["confidence"] <= 1, t
    assert parse_ts(t["tm_end"]) >= parse_ts(t["tm_transcript"]), t
    return t


def say(path, text, voice, gap_before=0.0, gap_after=0.0, rate=8000):
    """text spoken by a flite voice, as a mono 16-bit WAV at rate with silence around it."""
    raw = str(path) + ".raw.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", raw], check=True, timeout=30)
    subprocess.run(["sox", raw, "-r", str(rate), "-c", "1", "-b", "16", str(path), "pad",
                    str(gap_before), str(gap_after)], check=True, timeout=30)
    os.unlink(raw)


def script(path, parts, tmp, rate=8000):
    """A phone's microphone: each (start second, text, voice) spoken from that second on (a start
    before the previous sentence's end follows right after it), then 3 s of silence."""
    pieces, at = [], 0.0
    for i, (start, text, voice) in enumerate(parts):
        p = os.path.join(str(tmp), f"{os.path.basename(str(path))}.{i}.wav")
        say(p, text, voice, gap_before=max(0.0, start - at), rate=rate)
        at += seconds_of(p)
        pieces.append(p)
    subprocess.run(["sox"] + pieces + [str(path), "pad", "0", "3"], check=True, timeout=30)


def seconds_of(path):
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def joined_ccs(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    return [cc for cc in (ok(api.get(f"/v1.0/conferencecalls/{i}"))
                          for i in c["conferencecall_ids"]) if cc["status"] == "joined"]


def speaker_of_call(api, call_id):
    """The phone's name (the user part of the call's source)."""
    call = ok(api.get(f"/v1.0/calls/{call_id}"))
    target = call["source"]["target"]
    return target.split(":", 1)[-1].split("@", 1)[0]


def transcripts(api, tid):
    return [check_transcript(t) for t in
            ok(api.get(f"/v1.0/transcripts?transcribe_id={tid}"))["result"]]


def heard_any(message, words):
    said = set(message.lower().split())
    return any(w in said for w in words)


# alternating, then at the same time (both phones dial together)
ALICE = [(1.0, "the weather today is sunny and warm", "rms"),
         (11.0, "my favorite color is green", "rms")]
BOB = [(5.5, "please send the report to the office", "awb"),
       (11.0, "we will meet again next tuesday", "awb")]
ALICE_WORDS = [["weather", "sunny", "warm", "today"], ["favorite", "color", "green"]]
BOB_WORDS = [["send", "report", "office", "please"], ["meet", "again", "next", "tuesday"]]


@needs_speech
def test_who_said_what_live(server, customer, tmp_path):
    """Two phones with different voices, alternating and then overlapping: one transcript per
    utterance per speaker, each naming who spoke and carrying the sentence's words, live on the
    WebSocket within 2 s of the utterance's end, oldest first in the list; stop → done."""
    api = customer.api
    conf = customer.create_conference(name="captions")
    cid = conf["id"]
    alice_wav, bob_wav = tmp_path / "alice.wav", tmp_path / "bob.wav"
    script(alice_wav, ALICE, tmp_path)
    script(bob_wav, BOB, tmp_path)
    ws = ws_connect(server, customer.token)
    ws.send(json.dumps({"type": "subscribe", "topics": [
        f"customer_id:{customer.id}:transcript", f"customer_id:{customer.id}:transcribe"]}))
    ws_collect(ws, 0.3)
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phones = []
    try:
        # rules first
        e = err(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {}), 400)
        assert "en-US" in e["message"], e
        e = err(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "xx-XX"}), 400)
        assert "en-US" in e["message"], e
        c = ok(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "en-US"}))
        tid = c["transcribe_id"]
        assert tid != NIL_UUID and c["transcribe_ids"] == [tid], c
        err(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "en-US"}), 409,
            "FAILED_PRECONDITION", "STATE_INVALID")
        t = check_transcribe(ok(api.get(f"/v1.0/transcribes/{tid}")))
        assert t["status"] == "progressing" and t["reference_type"] == "confbridge", t
        assert t["reference_id"] == cid and t["direction"] == "in", t

        # both dial at once: their scripts are timed from their own start
        phones.append(Phone(tmp_path, "alice", alice_wav).dial(uri))
        phones.append(Phone(tmp_path, "bob", bob_wav).dial(uri))
        wait_until(lambda: len(joined_ccs(api, cid)) == 2, 15, what="two joined")
        names = {cc["id"]: speaker_of_call(api, cc["reference_id"])
                 for cc in joined_ccs(api, cid)}
        assert sorted(names.values()) == ["alice", "bob"], names
        frames = []
        arrival = {}
        deadline = time.monotonic() + max(seconds_of(alice_wav), seconds_of(bob_wav)) + 6
        while time.monotonic() < deadline:
            for f in ws_collect(ws, 0.25):
                frames.append(f)
                if f.get("type") == "transcript_created":
                    arrival[f["data"]["id"]] = time.time()
        got = transcripts(api, tid)
        c = ok(api.post(f"/v1.0/conferences/{cid}/transcribe_stop"))
        assert c["transcribe_id"] == NIL_UUID and c["transcribe_ids"] == [tid], c
        frames += ws_collect(ws, 1.0)
    finally:
        ws.close()
        for p in phones:
            p.stop()

    done = check_transcribe(ok(api.get(f"/v1.0/transcribes/{tid}")))
    assert done["status"] == "done", done
    types = [f["type"] for f in frames]
    assert "transcribe_done" in types, types

    by = {"alice": [], "bob": []}
    for t in got:
        assert t["transcribe_id"] == tid and t["customer_id"] == customer.id, t
        assert t["direction"] == "in", t
        who = names.get(t["conferencecall_id"])
        assert who, ("a transcript of nobody in the room", t)
        assert speaker_of_call(api, t["call_id"]) == who, t
        by[who].append(t)
    # every sentence heard, by the right speaker (two of each; the overlap is two transcripts)
    for who, words in (("alice", ALICE_WORDS), ("bob", BOB_WORDS)):
        msgs = [t["message"] for t in by[who]]
        for ws_ in words:
            assert any(heard_any(m, ws_) for m in msgs), (who, ws_, msgs)
        # nothing of the other one's sentences under this name
        other = BOB_WORDS if who == "alice" else ALICE_WORDS
        distinctive = {w for group in other for w in group if w not in ("please", "today", "next")}
        assert not any(set(m.lower().split()) & distinctive for m in msgs), (who, msgs)
    # oldest first, offsets from the start, live within 2 s of the utterance's end
    starts = [parse_ts(t["tm_create"]) for t in got]
    assert starts == sorted(starts), got
    for t in got:
        assert t["offset_ms"] > 0, t
        assert t["id"] in arrival, ("no live event", t)
        late = arrival[t["id"]] - parse_ts(t["tm_end"]).timestamp()
        assert late < 2.0, (late, t)
    # the overlapping sentences overlap in time, and are still attributed each to its speaker
    a2 = [t for t in by["alice"] if heard_any(t["message"], ALICE_WORDS[1])]
    b2 = [t for t in by["bob"] if heard_any(t["message"], BOB_WORDS[1])]
    assert a2 and b2
    assert parse_ts(a2[0]["tm_transcript"]) < parse_ts(b2[0]["tm_end"]) and \
        parse_ts(b2[0]["tm_transcript"]) < parse_ts(a2[0]["tm_end"]), (a2, b2)


HANNA = [(1.0, "please call me back tomorrow about the budget meeting", "slt"),
         (9.0, "we should buy a new computer for the office", "slt")]
HANNA_WORDS = [["call", "back", "tomorrow", "budget", "meeting"],
               ["buy", "new", "computer", "office"]]
IVAN = [(5.0, "the train leaves at seven in the morning", "rms")]
IVAN_WORDS = [["train", "leaves", "seven", "morning"]]


@needs_speech
def test_wideband_speaker(server, customer, tmp_path):
    """A G.722 phone (16 kHz) and a G.711 one in one room: each transcribed from its own band
    (the wideband one from its 16 kHz audio), each sentence under the right name."""
    api = customer.api
    conf = customer.create_conference(name="hd-captions")
    cid = conf["id"]
    hanna_wav, ivan_wav = tmp_path / "hanna.wav", tmp_path / "ivan.wav"
    script(hanna_wav, HANNA, tmp_path, rate=16000)  # baresip's file source: the codec's rate
    script(ivan_wav, IVAN, tmp_path)
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    tid = ok(api.post(f"/v1.0/conferences/{cid}/transcribe_start",
                      {"language": "en-US"}))["transcribe_id"]
    phones = []
    try:
        phones.append(Phone(tmp_path, "hanna", hanna_wav, codec="G722").dial(uri))
        phones.append(Phone(tmp_path, "ivan", ivan_wav, codec="PCMU").dial(uri))
        wait_until(lambda: len(joined_ccs(api, cid)) == 2, 15, what="two joined")
        names = {cc["id"]: speaker_of_call(api, cc["reference_id"])
                 for cc in joined_ccs(api, cid)}
        time.sleep(max(seconds_of(hanna_wav), seconds_of(ivan_wav)) + 3)
        ok(api.post(f"/v1.0/conferences/{cid}/transcribe_stop"))
        wait_until(lambda: ok(api.get(f"/v1.0/transcribes/{tid}"))["status"] == "done", 20,
                   what="the transcription done")
        got = transcripts(api, tid)
    finally:
        for p in phones:
            p.stop()
    by = {"hanna": [], "ivan": []}
    for t in got:
        by[names[t["conferencecall_id"]]].append(t["message"])
    for who, words in (("hanna", HANNA_WORDS), ("ivan", IVAN_WORDS)):
        for group in words:
            hits = [m for m in by[who] if sum(w in m.lower().split() for w in group) >= 2]
            assert hits, (who, group, by)
    assert not any("computer" in m or "budget" in m for m in by["ivan"]), by


WEBRTC = [(1.0, "please call me back tomorrow about the budget meeting", "slt"),
          (8.0, "we should buy a new computer for the office", "slt")]


@needs_speech
@pytest.mark.skipif(not have_aiortc(), reason="python3-aiortc is needed")
def test_webrtc_speaker(server, customer, tmp_path):
    """A WebRTC participant (ICE, DTLS-SRTP, Opus at 48 kHz) is transcribed from its own audio
    like a phone, under its own conferencecall and call, beside a G.711 phone."""
    api = customer.api
    conf = customer.create_conference(name="webrtc-captions")
    cid = conf["id"]
    web_wav, ivan_wav = tmp_path / "web.wav", tmp_path / "ivan.wav"
    script(web_wav, WEBRTC, tmp_path, rate=48000)
    script(ivan_wav, IVAN, tmp_path)
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    tid = ok(api.post(f"/v1.0/conferences/{cid}/transcribe_start",
                      {"language": "en-US"}))["transcribe_id"]
    phone = peer = None
    try:
        # the phone first, so the peer's file starts playing once both are in the room
        phone = Phone(tmp_path, "ivan", ivan_wav, codec="PCMU").dial(uri)
        wait_until(lambda: len(joined_ccs(api, cid)) == 1, 15, what="the phone joined")
        peer = WebRtcCall(server.sip_port, uri, web_wav, tmp_path / "web-heard.wav")
        assert peer.connect(timeout=10) == 200
        wait_until(lambda: len(joined_ccs(api, cid)) == 2, 15, what="the WebRTC peer joined")
        names = {cc["id"]: speaker_of_call(api, cc["reference_id"])
                 for cc in joined_ccs(api, cid)}
        assert sorted(names.values()) == ["ivan", "raw"], names
        time.sleep(seconds_of(web_wav) + 2)
        ok(api.post(f"/v1.0/conferences/{cid}/transcribe_stop"))
        wait_until(lambda: ok(api.get(f"/v1.0/transcribes/{tid}"))["status"] == "done", 20,
                   what="the transcription done")
        got = transcripts(api, tid)
    finally:
        if peer:
            peer.stop()
        if phone:
            phone.stop()
    by = {"raw": [], "ivan": []}
    for t in got:
        by[names[t["conferencecall_id"]]].append(t["message"])
    for who, words in (("raw", HANNA_WORDS), ("ivan", IVAN_WORDS)):
        for group in words:
            hits = [m for m in by[who] if sum(w in m.lower().split() for w in group) >= 2]
            assert hits, (who, group, by)
    assert not any("computer" in m or "budget" in m for m in by["ivan"]), by


@needs_speech
def test_call_transcribe_both_directions_and_conference_end(server, customer, tmp_path):
    """POST /transcribes of a call, direction both: what the caller says is "in", what it hears
    (the other participant) is "out". Stop by id; a conference's transcribe is done when the
    conference ends."""
    api = customer.api
    conf = customer.create_conference(name="call both")
    cid = conf["id"]
    a_wav, b_wav = tmp_path / "carol.wav", tmp_path / "dave.wav"
    script(a_wav, [(1.0, "the weather today is sunny and warm", "rms")], tmp_path)
    script(b_wav, [(3.0, "please send the report to the office", "awb")], tmp_path)
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phones = []
    try:
        phones.append(Phone(tmp_path, "carol", a_wav).dial(uri))
        wait_until(lambda: len(joined_ccs(api, cid)) == 1, 15, what="carol joined")
        call_id = joined_ccs(api, cid)[0]["reference_id"]
        err(api.post("/v1.0/transcribes", {"reference_type": "call", "reference_id": call_id,
                                           "language": "en-US", "direction": "up"}), 400)
        err(api.post("/v1.0/transcribes", {"reference_type": "meeting", "reference_id": call_id,
                                           "language": "en-US"}), 400)
        t = check_transcribe(ok(api.post("/v1.0/transcribes", {
            "reference_type": "call", "reference_id": call_id, "language": "en-US",
            "direction": "both"})))
        assert t["reference_type"] == "call" and t["direction"] == "both", t
        err(api.post("/v1.0/transcribes", {"reference_type": "call", "reference_id": call_id,
                                           "language": "en-US"}), 409)
        # a conference's transcribe through the same endpoint (VoIPBIN's name taken too)
        tc = check_transcribe(ok(api.post("/v1.0/transcribes", {
            "reference_type": "confbridge", "reference_id": cid, "language": "en-US"})))
        assert ok(api.get(f"/v1.0/conferences/{cid}"))["transcribe_id"] == tc["id"]
        phones.append(Phone(tmp_path, "dave", b_wav).dial(uri))
        wait_until(lambda: len(joined_ccs(api, cid)) == 2, 15, what="dave joined")
        time.sleep(max(seconds_of(a_wav), seconds_of(b_wav)) + 2)
        listed = ok(api.get(f"/v1.0/transcribes?reference_type=call&reference_id={call_id}"))
        assert [x["id"] for x in listed["result"]] == [t["id"]], listed
        err(api.get(f"/v1.0/transcribes?reference_id={call_id}"), 400)
        stopped = ok(api.post(f"/v1.0/transcribes/{t['id']}/stop"))
        assert stopped["status"] == "done", stopped
        ok(api.delete(f"/v1.0/conferences/{cid}"))
        wait_until(lambda: ok(api.get(f"/v1.0/transcribes/{tc['id']}"))["status"] == "done", 10,
                   what="the conference's transcribe done")
    finally:
        for p in phones:
            p.stop()
    got = transcripts(api, t["id"])
    ins = [x["message"] for x in got if x["direction"] == "in"]
    outs = [x["message"] for x in got if x["direction"] == "out"]
    assert any(heard_any(m, ALICE_WORDS[0]) for m in ins), got
    assert any(heard_any(m, BOB_WORDS[0]) for m in outs), got
    assert all(x["call_id"] == call_id and x["conferencecall_id"] == NIL_UUID for x in got), got
    # delete: gone from the list, its transcripts with it
    d = ok(api.delete(f"/v1.0/transcribes/{t['id']}"))
    assert d["tm_delete"] is not None, d
    err(api.get(f"/v1.0/transcripts?transcribe_id={t['id']}"), 404)
    err(api.get("/v1.0/transcripts"), 400)


def test_transcribe_rules_without_audio(server, customer, other_customer):
    api = customer.api
    conf = customer.create_conference(name="rules")
    cid = conf["id"]
    err(api.post(f"/v1.0/conferences/{cid}/transcribe_stop"), 409, "FAILED_PRECONDITION")
    err(other_customer.api.post(f"/v1.0/conferences/{cid}/transcribe_start",
                                {"language": "en-US"}), 404)
    e = err(api.post(f"/v1.0/conferences/{cid}/transcribe_start",
                     {"language": "en-US", "direction": "out"}), 400)
    assert "in" in e["message"], e
    c = ok(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "en-US"}))
    tid = c["transcribe_id"]
    err(other_customer.api.get(f"/v1.0/transcribes/{tid}"), 404)
    err(other_customer.api.get(f"/v1.0/transcripts?transcribe_id={tid}"), 404)
    assert tid not in [t["id"] for t in ok(other_customer.api.get("/v1.0/transcribes"))["result"]]
    assert ok(api.get(f"/v1.0/transcripts?transcribe_id={tid}"))["result"] == []
    ok(api.post(f"/v1.0/conferences/{cid}/transcribe_stop"))
    # a conference that is not progressing
    ok(api.delete(f"/v1.0/conferences/{cid}"))
    err(api.post(f"/v1.0/conferences/{cid}/transcribe_start", {"language": "en-US"}), 409)
    # a call that does not exist
    err(api.post("/v1.0/transcribes", {"reference_type": "call", "reference_id": NIL_UUID,
                                       "language": "en-US"}), 400)
    err(api.post("/v1.0/transcribes", {"reference_type": "call",
                                       "reference_id": "6a1e6c52-4a4c-4c1b-9a38-3c4a8f1c2d3e",
                                       "language": "en-US"}), 404)


class WhisperStub:
    """A recogniser speaking whisper.cpp's request shape (POST /inference, multipart with file,
    language, response_format), one request at a time; it answers with a fixed text and checks
    what it got."""

    def __init__(self, text="hallo welt wie geht es"):
        stub = self
        self.requests = []
        self.problems = []
        self.text = text

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n"
                msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                    head.encode() + body)
                got = {}
                if msg.is_multipart():
                    for part in msg.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        if name:
                            got[name] = part.get_payload(decode=True)
                wav_ok = False
                if "file" in got:
                    data = got["file"]
                    try:
                        with wave.open(io.BytesIO(data)) as w:
                            wav_ok = w.getnchannels() == 1 and w.getsampwidth() == 2 and \
                                w.getnframes() > 0
                    except wave.Error:
                        pass
                fields = {k: got[k].decode() for k in got if k != "file"}
                stub.requests.append({"path": self.path, "wav": wav_ok, **fields})
                if not wav_ok or fields.get("response_format") != "json" or \
                        not fields.get("language"):
                    stub.problems.append(fields)
                out = json.dumps({"text": stub.text}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/inference"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@needs_speech
def test_external_recogniser(server_factory, tmp_path):
    """--stt-url / --stt-languages: de-DE goes to a whisper.cpp-shaped server; one that is down
    gives counted failures with a clear error; en-US stays on the machine."""
    stub = WhisperStub()
    srv = server_factory("stt", extra_args=["--stt-url", stub.url, "--stt-languages", "de-DE"])
    cust = srv.new_customer()
    api = cust.api
    wav = tmp_path / "erin.wav"
    script(wav, [(1.0, "the weather today is sunny and warm", "rms"),
                 (6.0, "please send the report to the office", "awb")], tmp_path)
    conf = cust.create_conference(name="remote")
    phone = None
    try:
        e = err(api.post(f"/v1.0/conferences/{conf['id']}/transcribe_start",
                         {"language": "fr-FR"}), 400)
        assert "de-DE" in e["message"] and "en-US" in e["message"], e
        c = ok(api.post(f"/v1.0/conferences/{conf['id']}/transcribe_start",
                        {"language": "de-DE"}))
        tid = c["transcribe_id"]
        phone = Phone(tmp_path, "erin", wav).dial(
            f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
        wait_until(lambda: len(transcripts(api, tid)) >= 2, seconds_of(wav) + 10,
                   what="two transcripts from the stub")
    finally:
        if phone:
            phone.stop()
        stub.close()
    got = transcripts(api, tid)
    assert all(t["message"] == stub.text for t in got), got
    assert not stub.problems, stub.problems
    assert all(r["path"] == "/inference" and r["language"].startswith("de") for r in
               stub.requests), stub.requests

    # the stub is gone: utterances fail, counted, with the reason
    srv2 = server_factory("stt-down", extra_args=[
        "--stt-url", f"http://127.0.0.1:{free_tcp_port()}/inference", "--stt-languages", "de-DE",
        "--stt-timeout-ms", "2000"])
    cust2 = srv2.new_customer()
    conf2 = cust2.create_conference(name="down")
    c = ok(cust2.api.post(f"/v1.0/conferences/{conf2['id']}/transcribe_start",
                          {"language": "de-DE"}))
    tid2 = c["transcribe_id"]
    phone = Phone(tmp_path, "frank", wav).dial(
        f"sip:{conf2['direct_hash']}@127.0.0.1:{srv2.sip_port}")
    try:
        wait_until(lambda: ok(cust2.api.get(f"/v1.0/transcribes/{tid2}"))["failed"] >= 1,
                   seconds_of(wav) + 10, what="a failed utterance")
    finally:
        phone.stop()
    t = ok(cust2.api.get(f"/v1.0/transcribes/{tid2}"))
    assert "127.0.0.1" in t["error"], t
    assert transcripts(cust2.api, tid2) == []


@needs_speech
def test_flow_actions(server, customer, tmp_path):
    """transcribe_start / transcribe_stop in a call's flow: what the called phone says."""
    api = customer.api
    wav = tmp_path / "gina.wav"
    script(wav, [(0.5, "my favorite color is green", "rms")], tmp_path)
    phone = Phone(tmp_path, "gina", wav, auto_answer=True).listen()
    try:
        calls = ok(api.post("/v1.0/calls", {
            "source": {"type": "sip", "target": "sip:bot@127.0.0.1"},
            "destinations": [{"type": "sip", "target": phone.uri}],
            "actions": [
                {"type": "transcribe_start", "option": {"language": "en-US", "direction": "in"}},
                {"type": "sleep", "option": {"duration": int(seconds_of(wav) * 1000) + 1500}},
                {"type": "transcribe_stop"},
                {"type": "hangup"},
            ]}))
        call_id = calls["calls"][0]["id"]
        wait_until(lambda: ok(api.get(f"/v1.0/calls/{call_id}"))["status"] == "hangup",
                   seconds_of(wav) + 20, what="call done")
    finally:
        phone.stop()
    listed = ok(api.get(f"/v1.0/transcribes?reference_type=call&reference_id={call_id}"))
    assert len(listed["result"]) == 1, listed
    t = listed["result"][0]
    assert t["status"] == "done" and t["direction"] == "in", t
    assert t["activeflow_id"] != NIL_UUID, t
    got = transcripts(api, t["id"])
    assert any(heard_any(x["message"], ALICE_WORDS[1]) for x in got), got


def test_without_the_speech_model(server_factory):
    """A server whose speech model is missing runs on; starting a transcription says what is
    missing, and the conference is left as it was."""
    srv = server_factory("no-model", extra_args=["--stt-model-dir", "/nonexistent/model"])
    cust = srv.new_customer()
    conf = cust.create_conference(name="no model")
    e = err(cust.api.post(f"/v1.0/conferences/{conf['id']}/transcribe_start",
                          {"language": "en-US"}), 400)
    assert "none (the speech model is missing: /nonexistent/model" in e["message"], e
    assert "pocketsphinx-en-us" in e["message"], e
    c = ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))
    assert c["transcribe_id"] == NIL_UUID and c["transcribe_ids"] == [], c
    e = err(cust.api.post("/v1.0/transcribes", {"reference_type": "conference",
                                                "reference_id": conf["id"],
                                                "language": "en-US"}), 400)
    assert "pocketsphinx-en-us" in e["message"], e
