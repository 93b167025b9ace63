"""Recording (SPEC §5, the seeds' "Scenario 2: Recorded Meeting"): a conference's whole mix and a
call's audio to WAV files, downloadable with Range requests; the rules of recording_start/stop;
recordings that survive kill -9 (header sizes rewritten while recording, repaired at start-up);
a full file system that ends a recording cleanly while the call goes on; a call recording started
by a flow action."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import NIL_UUID, TM_NEVER, err, ok, parse_ts, wait_until, ws_collect, ws_connect
from phones import Phone, have_baresip, make_tone, max_tone_level, read_wav

needs_phones = pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")

RECORDING_FIELDS = {"id", "customer_id", "owner_type", "owner_id", "reference_type", "reference_id",
                    "status", "format", "activeflow_id", "on_end_flow_id", "tm_start", "tm_end",
                    "tm_create", "tm_update", "tm_delete", "duration_ms", "size", "frames_dropped"}


def check_recording(r, customer_id=None):
    missing = RECORDING_FIELDS - set(r)
    assert not missing, f"recording lacks {sorted(missing)}: {r}"
    assert r["status"] in ("initiating", "recording", "stopping", "ended"), r
    assert r["reference_type"] in ("call", "confbridge"), r
    assert r["format"] == "wav", r
    for k in ("duration_ms", "size", "frames_dropped"):
        assert isinstance(r[k], int) and r[k] >= 0, (k, r)
    for k in ("tm_start", "tm_end", "tm_create", "tm_update", "tm_delete"):
        parse_ts(r[k])
    if customer_id:
        assert r["customer_id"] == customer_id, r
    return r


def joined_count(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    return sum(1 for i in c["conferencecall_ids"]
               if ok(api.get(f"/v1.0/conferencecalls/{i}"))["status"] == "joined")


def wait_ended(api, rec_id, timeout=10):
    wait_until(lambda: ok(api.get(f"/v1.0/recordings/{rec_id}"))["status"] == "ended", timeout,
               what="recording ended")
    return check_recording(ok(api.get(f"/v1.0/recordings/{rec_id}")))


def download(api, rec_id, tmp_path, name="rec.wav"):
    r = api.get(f"/v1.0/recordingfiles/{rec_id}")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("audio/wav"), r.headers
    assert int(r.headers["content-length"]) == len(r.body), r.headers
    path = tmp_path / name
    path.write_bytes(r.body)
    return path, r.body


def sox_seconds(path):
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, f"sox cannot read {path}: {out.stderr}"
    return float(out.stdout.strip())


@needs_phones
def test_recorded_meeting(server, customer, tmp_path):
    """Scenario 2: create, start recording (empty room: silence), two phones with different
    tones join, stop, download: both tones at their level, duration = wall time."""
    api = customer.api
    conf = customer.create_conference(name="recorded meeting")
    ws = ws_connect(server, customer.token)
    ws.send('{"type":"subscribe","topics":["customer_id:%s:recording"]}' % customer.id)
    ws_collect(ws, 0.3)
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phones = []
    try:
        t0 = time.monotonic()
        c = ok(api.post(f"/v1.0/conferences/{conf['id']}/recording_start",
                        {"format": "wav", "duration": 0}))
        t1 = time.monotonic()
        rec_id = c["recording_id"]
        assert rec_id != NIL_UUID and c["recording_ids"] == [rec_id], c
        rec = check_recording(ok(api.get(f"/v1.0/recordings/{rec_id}")), customer.id)
        assert rec["reference_type"] == "confbridge" and rec["reference_id"] == conf["id"], rec
        assert rec["status"] in ("initiating", "recording"), rec
        # already recording: 409
        err(api.post(f"/v1.0/conferences/{conf['id']}/recording_start", {"format": "wav"}), 409,
            "FAILED_PRECONDITION", "STATE_INVALID")
        # the file is not there while recording
        err(api.get(f"/v1.0/recordingfiles/{rec_id}"), 409)

        time.sleep(1.0)  # an empty room first: silence
        for name, hz in (("alice", 440), ("bob", 700)):
            wav = tmp_path / f"{name}.wav"
            make_tone(wav, hz)
            phones.append(Phone(tmp_path, name, wav).dial(uri))
        wait_until(lambda: joined_count(api, conf["id"]) == 2, 15, what="two joined")
        time.sleep(3.0)
        t2 = time.monotonic()
        c = ok(api.post(f"/v1.0/conferences/{conf['id']}/recording_stop"))
        t3 = time.monotonic()
        assert c["recording_id"] == NIL_UUID and c["recording_ids"] == [rec_id], c
        rec = wait_ended(api, rec_id)
        frames = ws_collect(ws, 1.0)
    finally:
        ws.close()
        for p in phones:
            p.stop()

    types = [f["type"] for f in frames if f.get("data", {}).get("id") == rec_id]
    assert "recording_started" in types and "recording_finished" in types, frames
    assert rec["frames_dropped"] == 0, rec
    assert rec["tm_end"] != TM_NEVER and rec["tm_start"] != TM_NEVER, rec

    path, body = download(api, rec_id, tmp_path)
    assert rec["size"] == len(body), (rec, len(body))
    x, rate = read_wav(str(path))
    assert rate == 16000  # a conference is recorded at the 16 kHz its room mixes at
    seconds = len(x) / rate
    assert abs(rec["duration_ms"] / 1000 - seconds) < 0.03, (rec, seconds)
    # wall time: between the start's answer and the stop's request, within 100 ms
    lo, hi = (t2 - t1) - 0.1, (t3 - t0) + 0.1
    assert lo <= seconds <= hi, (seconds, lo, hi)
    assert abs(sox_seconds(path) - seconds) < 0.01
    # the first second is silence; then both tones at the level they were sent (0.25 of full
    # scale: amplitude ~8190), nobody subtracted
    assert max(abs(v) for v in x[:rate // 2]) < 200, "the empty room is not silent"
    for hz in (440, 700):
        level = max_tone_level(x, rate, hz)
        assert 6500 < level < 9800, (hz, level)

    # Range: players can seek
    r = api.get(f"/v1.0/recordingfiles/{rec_id}", headers=[("Range", "bytes=100-1099")])
    assert r.status == 206, r
    assert r.body == body[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(body)}", r.headers
    r = api.get(f"/v1.0/recordingfiles/{rec_id}", headers=[("Range", "bytes=-44")])
    assert r.status == 206 and r.body == body[-44:], r
    r = api.get(f"/v1.0/recordingfiles/{rec_id}", headers=[("Range", f"bytes={len(body)}-")])
    assert r.status == 416, r
    assert r.headers["content-range"] == f"bytes */{len(body)}", r.headers


def test_recording_rules(server, customer, other_customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="rules")
    cid = conf["id"]
    err(api.post(f"/v1.0/conferences/{cid}/recording_stop"), 409, "FAILED_PRECONDITION")
    e = err(api.post(f"/v1.0/conferences/{cid}/recording_start", {"format": "mp3"}), 400,
            "INVALID_ARGUMENT")
    assert "wav" in e["message"], e
    err(api.post(f"/v1.0/conferences/{cid}/recording_start", {"duration": -1}), 400)
    err(api.post(f"/v1.0/conferences/{cid}/recording_start", {"duration": "5"}), 400)
    err(api.post(f"/v1.0/conferences/{cid}/recording_start",
                 {"on_end_flow_id": "6a1e6c52-4a4c-4c1b-9a38-3c4a8f1c2d3e"}), 400)
    # another customer's conference: 404
    err(other_customer.api.post(f"/v1.0/conferences/{cid}/recording_start", {}), 404)

    # format defaults to wav; a duration ends it by itself
    c = ok(api.post(f"/v1.0/conferences/{cid}/recording_start", {"duration": 2}))
    rec_id = c["recording_id"]
    err(other_customer.api.get(f"/v1.0/recordings/{rec_id}"), 404)
    err(other_customer.api.get(f"/v1.0/recordingfiles/{rec_id}"), 404)
    err(other_customer.api.delete(f"/v1.0/recordings/{rec_id}"), 404)
    assert rec_id not in [r["id"] for r in ok(other_customer.api.get("/v1.0/recordings"))["result"]]
    rec = wait_ended(api, rec_id, timeout=6)
    assert 1900 <= rec["duration_ms"] <= 2100, rec
    assert ok(api.get(f"/v1.0/conferences/{cid}"))["recording_id"] == NIL_UUID

    # the list, filtered by reference
    c = ok(api.post(f"/v1.0/conferences/{cid}/recording_start", {}))
    second = c["recording_id"]
    assert c["recording_ids"] == [rec_id, second], c
    listed = ok(api.get("/v1.0/recordings", query={"reference_id": cid}))["result"]
    assert [r["id"] for r in listed] == [second, rec_id], listed  # newest first
    page = ok(api.get("/v1.0/recordings", query={"page_size": 1}))
    assert len(page["result"]) == 1 and page["next_page_token"], page

    # the conference terminates: its recording ends, recording_id cleared
    ok(api.delete(f"/v1.0/conferences/{cid}"))
    rec = wait_ended(api, second)
    c = ok(api.get(f"/v1.0/conferences/{cid}"))
    assert c["status"] == "terminated" and c["recording_id"] == NIL_UUID, c
    err(api.post(f"/v1.0/conferences/{cid}/recording_start", {}), 409, "FAILED_PRECONDITION",
        "STATE_INVALID")

    # delete: the record is marked deleted, the file is gone
    assert api.get(f"/v1.0/recordingfiles/{second}").status == 200
    d = ok(api.delete(f"/v1.0/recordings/{second}"))
    assert d["tm_delete"] != TM_NEVER, d
    err(api.get(f"/v1.0/recordingfiles/{second}"), 404)
    assert not [f for f in os.listdir(os.path.join(server.data_dir, "recordings"))
                if f.startswith(second)]

    # deleting a running recording stops it first
    conf2 = customer.create_conference(name="rules2")
    rid = ok(api.post(f"/v1.0/conferences/{conf2['id']}/recording_start", {}))["recording_id"]
    d = ok(api.delete(f"/v1.0/recordings/{rid}"))
    assert d["tm_delete"] != TM_NEVER, d
    wait_until(lambda: ok(api.get(f"/v1.0/recordings/{rid}"))["status"] == "ended", 5,
               what="deleted recording ended")
    assert ok(api.get(f"/v1.0/conferences/{conf2['id']}"))["recording_id"] == NIL_UUID


def test_a_stalled_server_loses_no_frame(server, customer, tmp_path):
    """A media thread woken late (the machine was busy: here the whole process is stopped for
    70 ms at a time) runs the slots it slept through back to back, so the recording loses
    nothing; a stall longer than the engine catches up (100 ms) is written as counted silence,
    and the file keeps wall time either way."""
    import signal

    api = customer.api
    pid = server.proc.pid

    def stall(seconds, times):
        for _ in range(times):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.3)

    def record(seconds, times):
        cid = customer.create_conference(name="stalls")["id"]  # an empty room is recorded too
        t0 = time.monotonic()
        rec_id = ok(api.post(f"/v1.0/conferences/{cid}/recording_start", {}))["recording_id"]
        time.sleep(0.3)
        stall(seconds, times)
        ok(api.post(f"/v1.0/conferences/{cid}/recording_stop"))
        wall_ms = (time.monotonic() - t0) * 1000
        rec = wait_ended(api, rec_id)
        assert abs(rec["duration_ms"] - wall_ms) <= 150, (rec, wall_ms)
        return rec

    rec = record(0.07, 5)
    assert rec["frames_dropped"] == 0, rec
    rec = record(0.5, 1)
    assert 15 <= rec["frames_dropped"] <= 30, rec  # 500 ms: about 25 slots, none caught up


def test_kill9_keeps_the_recording(server_factory, receiver, tmp_path):
    """kill -9 while recording: the header on disk already covers all but the last 10 s; at
    start-up the file is repaired, the recording ended and recording_finished sent."""
    srv = server_factory()
    cust = srv.new_customer()
    ok(cust.api.put("/v1.0/customer", {"webhook_uri": receiver.url}))
    conf = cust.create_conference(name="crash")
    rid = ok(cust.api.post(f"/v1.0/conferences/{conf['id']}/recording_start", {}))["recording_id"]
    time.sleep(12.5)
    srv.kill9()
    path = os.path.join(srv.data_dir, "recordings", f"{rid}.wav")
    with open(path, "rb") as f:
        head = f.read(44)
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE", head
    # the sizes written before the crash already cover at least the first 10 s (a power cut
    # loses at most the last 10 s), without any repair
    declared = int.from_bytes(head[40:44], "little")
    assert declared >= 10 * 16000 - 320, declared
    assert sox_seconds(path) >= 10.0 - 0.02

    srv.start()
    rec = wait_ended(cust.api, rid)
    assert 12.0 <= rec["duration_ms"] / 1000 <= 13.5, rec
    assert abs(sox_seconds(path) - rec["duration_ms"] / 1000) < 0.03
    got, _ = download(cust.api, rid, tmp_path)
    assert sox_seconds(got) == sox_seconds(path)
    wait_until(lambda: any(e["type"] == "recording_finished" and e["data"]["id"] == rid
                           for e in receiver.events()), 10, what="recording_finished after restart")
    c = ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))
    assert c["recording_id"] == NIL_UUID, c


def _small_fs(path, size):
    """A tmpfs of size at path (root), or None when this machine does not allow mounts."""
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, timeout=10)
    return path if r.returncode == 0 else None


@needs_phones
def test_full_file_system_ends_the_recording(server_factory, tmp_path):
    recs = _small_fs(tmp_path / "small", "64k")
    if recs is None:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        srv = server_factory(extra_args=["--recordings-dir", str(recs)])
        cust = srv.new_customer()
        conf = cust.create_conference(name="full")
        wav = tmp_path / "tone.wav"
        make_tone(wav, 500)
        phone = Phone(tmp_path, "talker", wav).dial(
            f"sip:{conf['direct_hash']}@127.0.0.1:{srv.sip_port}")
        try:
            wait_until(lambda: joined_count(cust.api, conf["id"]) == 1, 15, what="joined")
            rid = ok(cust.api.post(f"/v1.0/conferences/{conf['id']}/recording_start",
                                   {}))["recording_id"]
            rec = wait_ended(cust.api, rid, timeout=15)  # 64 KiB hold about 4 s
            assert 2000 < rec["duration_ms"] < 4200, rec
            c = ok(cust.api.get(f"/v1.0/conferences/{conf['id']}"))
            assert c["status"] == "progressing" and c["recording_id"] == NIL_UUID, c
            assert joined_count(cust.api, conf["id"]) == 1  # the call goes on
            assert phone.alive()
            path, _ = download(cust.api, rid, tmp_path)
            assert abs(sox_seconds(path) - rec["duration_ms"] / 1000) < 0.03
            logs = srv.all_logs()
            assert sum(1 for l in logs.splitlines() if "recording" in l and "No space" in l) == 1, \
                logs[-3000:]
        finally:
            phone.stop()
    finally:
        subprocess.run(["umount", "-l", str(recs)], timeout=10)


@needs_phones
def test_call_recording_by_flow_and_api(server, customer, tmp_path):
    """An outgoing call to an auto-answering phone whose flow records it: the file holds what the
    phone says (its tone) and what it hears (a played tone)."""
    api = customer.api
    wav = tmp_path / "callee.wav"
    make_tone(wav, 600)
    phone = Phone(tmp_path, "callee", wav, auto_answer=True).listen()
    sounds = os.path.join(server.data_dir, "sounds")  # play reads local files only from there
    os.makedirs(sounds, exist_ok=True)
    played = os.path.join(sounds, f"played-{os.getpid()}-{time.monotonic_ns()}.wav")
    make_tone(played, 1000, seconds=2)
    try:
        calls = ok(api.post("/v1.0/calls", {
            "source": {"type": "sip", "target": "sip:rec@127.0.0.1"},
            "destinations": [{"type": "sip", "target": phone.uri}],
            "actions": [
                {"type": "recording_start", "option": {"format": "wav", "duration": 30}},
                {"type": "play", "option": {"stream_urls": [f"file://{played}"]}},
                {"type": "sleep", "option": {"duration": 1000}},
                {"type": "recording_stop"},
                {"type": "sleep", "option": {"duration": 500}},
                {"type": "hangup"},
            ]}))
        call_id = calls["calls"][0]["id"]
        wait_until(lambda: ok(api.get(f"/v1.0/calls/{call_id}"))["status"] == "hangup", 20,
                   what="call done")
        call = ok(api.get(f"/v1.0/calls/{call_id}"))
        assert len(call["recording_ids"]) == 1 and call["recording_id"] == NIL_UUID, call
        rid = call["recording_ids"][0]
        rec = wait_ended(api, rid)
        assert rec["reference_type"] == "call" and rec["reference_id"] == call_id, rec
        assert rec["activeflow_id"] == call["activeflow_id"], rec
        assert 2500 <= rec["duration_ms"] <= 4000, rec
        path, _ = download(api, rid, tmp_path)
        x, rate = read_wav(str(path))
        assert max_tone_level(x, rate, 600) > 4000, "the callee's voice is not recorded"
        assert max_tone_level(x, rate, 1000) > 4000, "what the callee hears is not recorded"
    finally:
        phone.stop()

    # the API: a call that is not progressing cannot record
    err(api.post(f"/v1.0/calls/{call_id}/recording_start", {}), 409, "FAILED_PRECONDITION")
    err(api.post(f"/v1.0/calls/{call_id}/recording_stop"), 409, "FAILED_PRECONDITION")


@needs_phones
def test_call_recording_api(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="call rec")
    wav = tmp_path / "caller.wav"
    make_tone(wav, 800)
    phone = Phone(tmp_path, "caller", wav).dial(
        f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}")
    try:
        wait_until(lambda: joined_count(api, conf["id"]) == 1, 15, what="joined")
        cc_id = ok(api.get(f"/v1.0/conferences/{conf['id']}"))["conferencecall_ids"][0]
        cc = ok(api.get(f"/v1.0/conferencecalls/{cc_id}"))
        call_id = cc["reference_id"]
        c = ok(api.post(f"/v1.0/calls/{call_id}/recording_start", {"format": "wav"}))
        rid = c["recording_id"]
        assert rid != NIL_UUID and c["recording_ids"] == [rid], c
        err(api.post(f"/v1.0/calls/{call_id}/recording_start", {}), 409, "FAILED_PRECONDITION")
        time.sleep(2)
        c = ok(api.post(f"/v1.0/calls/{call_id}/recording_stop"))
        assert c["recording_id"] == NIL_UUID, c
        rec = wait_ended(api, rid)
        assert rec["reference_type"] == "call", rec
        path, _ = download(api, rid, tmp_path)
        x, rate = read_wav(str(path))
        assert max_tone_level(x, rate, 800) > 5000
    finally:
        phone.stop()
