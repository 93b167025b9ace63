"""Calls and flows with real peers: outgoing calls through POST /calls to auto-answering baresip
phones, incoming calls to numbers, greetings spoken with text to speech (checked with
pocketsphinx keyword spotting), the customer-agent story over a connect conference, a PIN room,
and the hang-up reasons of outgoing calls (against a scripted SIP endpoint)."""

import random
import re
import threading
import time
import uuid

import pytest

from conftest import TM_NEVER, ok, wait_until, ws_connect, ws_collect
from phones import (Phone, ScriptedUas, have_baresip, have_pocketsphinx, make_tone,
                    max_tone_level, spoken_keywords)

pytestmark = pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")

KEYWORDS = ["welcome", "goodbye"]


def new_number():
    return "+1555" + str(random.randrange(10**6, 10**7))


def phone(tmp_path, name, hz, auto_answer=False):
    wav = tmp_path / f"{name}.wav"
    make_tone(wav, hz)
    return Phone(tmp_path, name, wav, auto_answer=auto_answer)


def call_of(api, call_id):
    return ok(api.get(f"/v1.0/calls/{call_id}"))


def joined(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    ccs = [ok(api.get(f"/v1.0/conferencecalls/{i}")) for i in c["conferencecall_ids"]]
    return [cc for cc in ccs if cc["status"] == "joined"]


def segment(samples, rate, t0, t1):
    return samples[int(t0 * rate):int(t1 * rate)]


def onset(samples, rate, hz, level=3000, window_s=0.1, hold=5):
    """Seconds into the recording when the tone starts and holds (speech has energy at every
    frequency for a moment; a tone stays). None: never."""
    from phones import tone_level
    w = int(rate * window_s)
    run = 0
    for i, start in enumerate(range(0, max(1, len(samples) - w + 1), w)):
        run = run + 1 if tone_level(samples[start:start + w], rate, hz) > level else 0
        if run == hold:
            return (i - hold + 1) * window_s
    return None


def speech_start(samples, rate, threshold=300, window_s=0.05):
    """Seconds into the recording when anything loud is first heard."""
    w = int(rate * window_s)
    for start in range(0, max(1, len(samples) - w + 1), w):
        seg = samples[start:start + w]
        if seg and max(abs(v) for v in seg) > threshold:
            return start / rate
    return None


def test_outgoing_call_talks_then_joins(server, customer, tmp_path):
    """POST /calls to an auto-answering phone: dialing → ringing → progressing, the greeting is
    spoken, then the phone is in the conference and hears the other participant's tone."""
    api = customer.api
    conf = customer.create_conference(name="dial-out")
    bob = phone(tmp_path, "bob", 700).dial(f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}")
    alice = phone(tmp_path, "alice", 440, auto_answer=True).listen()
    ws = ws_connect(server, customer.token)
    ws.send('{"type":"subscribe","topics":["customer_id:%s:call","customer_id:%s:activeflow"]}'
            % (customer.id, customer.id))
    try:
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 15, what="bob joined")
        r = ok(api.post("/v1.0/calls", {
            "source": {"type": "sip", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": alice.uri}],
            "actions": [
                {"type": "talk", "option": {"text": "Welcome to the conference.",
                                            "language": "en-US"}},
                {"type": "conference_join", "option": {"conference_id": conf["id"]}},
            ]}))
        assert r["groupcalls"] == [] and len(r["calls"]) == 1
        call = r["calls"][0]
        assert call["status"] == "dialing" and call["direction"] == "outgoing"
        assert call["destination"]["target"] == alice.uri and call["activeflow_id"] != call["id"]
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 20, what="alice joined")
        c = call_of(api, call["id"])
        assert c["status"] == "progressing" and c["tm_ringing"] and c["tm_progressing"]
        af = ok(api.get(f"/v1.0/activeflows/{call['activeflow_id']}"))
        assert af["status"] == "running" and af["reference_id"] == call["id"]
        assert af["current_action"]["type"] == "conference_join"
        assert [a["type"] for a in af["executed_actions"]] == ["talk", "conference_join"]
        time.sleep(3)  # alice hears bob for a while

        frames = ws_collect(ws, 0.5)
        types = [f["type"] for f in frames if f["data"].get("id") == call["id"]]
        for t in ("call_created", "call_dialing", "call_ringing", "call_progressing"):
            assert t in types, (t, types)
        assert any(f["type"] == "activeflow_created" for f in frames)

        # hang up through the API: BYE to alice, her flow ends
        ok(api.post(f"/v1.0/calls/{call['id']}/hangup"))
        wait_until(lambda: call_of(api, call["id"])["status"] == "hangup", 10, what="hung up")
        c = call_of(api, call["id"])
        assert c["hangup_by"] == "local" and c["hangup_reason"] == "normal"
        wait_until(lambda: ok(api.get(f"/v1.0/activeflows/{call['activeflow_id']}"))["status"]
                   == "ended", 5, what="activeflow ended")
    finally:
        ws.close()
        alice.stop()
        bob.stop()
    heard, rate = alice.heard()
    assert len(heard) > rate * 3, alice.log()
    # the greeting first (about 1.5 s of speech), then bob's tone
    t_tone = onset(heard, rate, 700)
    t_speech = speech_start(heard, rate)
    assert t_tone is not None, "alice never heard bob"
    assert t_speech is not None and t_tone - t_speech > 1.0, (t_speech, t_tone)
    if have_pocketsphinx():
        first = segment(heard, rate, 0, t_tone)
        assert "welcome" in spoken_keywords(first, rate, KEYWORDS, tmp_path)
        assert "welcome" not in spoken_keywords(segment(heard, rate, t_tone + 0.2, t_tone + 3),
                                                rate, KEYWORDS, tmp_path)


def test_customer_agent_story(server, customer, tmp_path):
    """A customer calls a number whose flow greets and joins a connect conference; an agent is
    dialled into the same conference; they hear each other; when the customer hangs up the agent
    is ejected, hears the post-flow goodbye, is hung up, and the conference terminates."""
    api = customer.api
    goodbye = ok(api.post("/v1.0/flows", {"name": "goodbye", "actions": [
        {"type": "talk", "option": {"text": "Goodbye. Thank you for calling. Goodbye.",
                                    "language": "en-US"}}]}))
    conf = ok(api.post("/v1.0/conferences", {"type": "connect", "name": "support",
                                             "post_flow_id": goodbye["id"]}))
    inbound = ok(api.post("/v1.0/flows", {"name": "support line", "actions": [
        {"type": "answer"},
        {"type": "talk", "option": {"text": "Welcome. An agent will join you.",
                                    "language": "en-US"}},
        {"type": "conference_join", "option": {"conference_id": conf["id"]}}]}))
    num = new_number()
    ok(api.post("/v1.0/numbers", {"number": num, "call_flow_id": inbound["id"], "name": "support"}))

    cust = phone(tmp_path, "customer", 440)
    agent = phone(tmp_path, "agent", 700, auto_answer=True).listen()
    try:
        cust.dial(f"sip:{num}@127.0.0.1:{server.sip_port}")
        wait_until(lambda: len(ok(api.get(f"/v1.0/conferences/{conf['id']}"))["conferencecall_ids"])
                   == 1, 20, what="the customer in the conference")
        r = ok(api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": agent.uri}],
            "actions": [{"type": "conference_join", "option": {"conference_id": conf["id"]}}]}))
        agent_call = r["calls"][0]
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 20, what="both joined")
        calls = {cc["reference_id"] for cc in joined(api, conf["id"])}
        assert agent_call["id"] in calls
        cust_call_id = (calls - {agent_call["id"]}).pop()
        cc = call_of(api, cust_call_id)
        assert cc["direction"] == "incoming" and cc["flow_id"] == inbound["id"]
        assert cc["destination"]["target"].startswith(f"sip:{num}@")
        time.sleep(3)
        t_hangup = time.monotonic()
        cust.stop()  # the customer hangs up
        wait_until(lambda: call_of(api, cust_call_id)["status"] == "hangup", 10,
                   what="customer call ended")
        assert call_of(api, cust_call_id)["hangup_by"] == "remote"
        # the agent hears the goodbye, then nothing is left: hung up by the server
        wait_until(lambda: call_of(api, agent_call["id"])["status"] == "hangup", 15,
                   what="agent hung up after the post-flow")
        took = time.monotonic() - t_hangup
        assert took > 0.5, "the agent was hung up without the post-flow"
        a = call_of(api, agent_call["id"])
        assert a["hangup_by"] == "local" and a["hangup_reason"] == "normal"
        wait_until(lambda: ok(api.get(f"/v1.0/conferences/{conf['id']}"))["status"] == "terminated",
                   10, what="conference terminated")
        wait_until(lambda: not agent.alive() or "terminated" in agent.log().lower()
                   or "closed" in agent.log().lower(), 10, what="agent phone saw the BYE")
    finally:
        cust.stop()
        agent.stop()
    heard_agent, rate = agent.heard()
    heard_cust, rate_c = cust.heard()
    assert max_tone_level(heard_cust, rate_c, 700) > 500, "the customer never heard the agent"
    assert max_tone_level(heard_agent, rate, 440) > 500, "the agent never heard the customer"
    if have_pocketsphinx():
        assert "welcome" in spoken_keywords(segment(heard_cust, rate_c, 0, 4), rate_c, KEYWORDS,
                                            tmp_path)
        # what the agent heard after the customer's tone stopped: the goodbye
        from phones import tone_level
        w = rate // 10
        last = max(i for i in range(0, len(heard_agent) - w, w)
                   if tone_level(heard_agent[i:i + w], rate, 440) > 3000)
        tail = heard_agent[last + w:]
        assert len(tail) > rate * 0.5, "the post-flow goodbye was not heard"
        assert "goodbye" in spoken_keywords(tail, rate, KEYWORDS, tmp_path)


def test_pin_room(server, customer, tmp_path):
    """digits_receive + branch: the right PIN (typed on a baresip phone) joins the conference; a
    wrong one hears a refusal and is hung up."""
    api = customer.api
    conf = customer.create_conference(name="pin room")
    join_id, wrong_id = str(uuid.uuid4()), str(uuid.uuid4())
    flow = ok(api.post("/v1.0/flows", {"name": "pin", "actions": [
        {"type": "answer"},
        {"type": "talk", "option": {"text": "Please enter your pin.", "digits_handle": "next"}},
        {"type": "digits_receive", "option": {"length": 4, "key": "#", "duration": 15000}},
        {"type": "branch", "option": {"target_ids": {"1234": join_id},
                                      "default_target_id": wrong_id}},
        {"id": join_id, "type": "conference_join", "option": {"conference_id": conf["id"]}},
        {"type": "hangup"},
        {"id": wrong_id, "type": "talk", "option": {"text": "Wrong pin. Goodbye."}},
        {"type": "hangup", "option": {"reason": "busy"}}]}))
    num = new_number()
    ok(api.post("/v1.0/numbers", {"number": num, "call_flow_id": flow["id"]}))
    uri = f"sip:{num}@127.0.0.1:{server.sip_port}"

    def live_call(exclude=()):
        calls = ok(api.get("/v1.0/calls"))["result"]
        for c in calls:
            if c["flow_id"] == flow["id"] and c["status"] == "progressing" and c["id"] not in exclude:
                return c
        return None

    good = phone(tmp_path, "good", 440)
    bad = phone(tmp_path, "bad", 700)
    try:
        good.dial(uri)
        wait_until(lambda: live_call() is not None, 15, what="the call answered")
        good_call = live_call()
        time.sleep(1.0)
        good.send_digits("1234")
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 15, what="the right PIN joined")
        assert joined(api, conf["id"])[0]["reference_id"] == good_call["id"]
        af = ok(api.get(f"/v1.0/activeflows/{good_call['activeflow_id']}"))
        assert af["current_action"]["type"] == "conference_join"

        bad.dial(uri)
        wait_until(lambda: live_call(exclude={good_call["id"]}) is not None, 15,
                   what="the second call answered")
        bad_call = live_call(exclude={good_call["id"]})
        time.sleep(1.0)
        bad.send_digits("9999")
        wait_until(lambda: call_of(api, bad_call["id"])["status"] == "hangup", 20,
                   what="the wrong PIN hung up")
        b = call_of(api, bad_call["id"])
        assert b["hangup_reason"] == "busy" and b["hangup_by"] == "local"
        assert len(joined(api, conf["id"])) == 1
        # DTMF events reached the API too
    finally:
        good.stop()
        bad.stop()


@pytest.mark.parametrize("final,reason,by", [(486, "busy", "remote"), (503, "failed", "remote"),
                                             (480, "noanswer", "remote")])
def test_outgoing_call_refused(server, customer, final, reason, by):
    uas = ScriptedUas(final=final)
    try:
        r = ok(customer.api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": uas.uri}],
            "actions": [{"type": "talk", "option": {"text": "never heard"}}]}))
        cid = r["calls"][0]["id"]
        wait_until(lambda: call_of(customer.api, cid)["status"] == "hangup", 10, what="hangup")
        c = call_of(customer.api, cid)
        assert c["hangup_reason"] == reason and c["hangup_by"] == by, c
        assert c["tm_progressing"] == TM_NEVER and c["tm_ringing"] != TM_NEVER
        af = ok(customer.api.get(f"/v1.0/activeflows/{c['activeflow_id']}"))
        assert af["status"] == "ended" and af["executed_actions"] == []
        # the ACK leaves with the hangup; the test's UAS thread may read it a moment later
        wait_until(lambda: "ACK" in uas.got, 2, what="the ACK of the final answer")
    finally:
        uas.close()


def test_outgoing_call_cancelled_and_noanswer(server_factory, tmp_path):
    srv = server_factory(extra_args=["--ring-timeout-ms", "1500"])
    cust = srv.new_customer()
    uas = ScriptedUas(final=None)
    try:
        body = {"destinations": [{"type": "sip", "target": uas.uri}], "actions": [{"type": "answer"}]}
        # nobody answers: the ring timeout cancels it
        t0 = time.monotonic()
        cid = ok(cust.api.post("/v1.0/calls", body))["calls"][0]["id"]
        wait_until(lambda: call_of(cust.api, cid)["status"] == "ringing", 5, what="ringing")
        wait_until(lambda: call_of(cust.api, cid)["status"] == "hangup", 10, what="noanswer")
        assert time.monotonic() - t0 >= 1.4
        c = call_of(cust.api, cid)
        assert c["hangup_reason"] == "noanswer" and c["hangup_by"] == "local", c
        assert "CANCEL" in uas.got
        # hung up through the API while ringing: cancel
        cid = ok(cust.api.post("/v1.0/calls", body))["calls"][0]["id"]
        wait_until(lambda: call_of(cust.api, cid)["status"] == "ringing", 5, what="ringing")
        ok(cust.api.post(f"/v1.0/calls/{cid}/hangup"))
        wait_until(lambda: call_of(cust.api, cid)["status"] == "hangup", 10, what="cancelled")
        c = call_of(cust.api, cid)
        assert c["hangup_reason"] == "cancel" and c["hangup_by"] == "local", c
    finally:
        uas.close()


def test_activeflow_stop_hangs_up(server, customer, tmp_path):
    api = customer.api
    alice = phone(tmp_path, "alice", 440, auto_answer=True).listen()
    try:
        r = ok(api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": alice.uri}],
            "actions": [{"type": "sleep", "option": {"duration": 60000}}]}))
        call = r["calls"][0]
        wait_until(lambda: call_of(api, call["id"])["status"] == "progressing", 15, what="answered")
        af = ok(api.post(f"/v1.0/activeflows/{call['activeflow_id']}/stop"))
        assert af["status"] == "ended"
        wait_until(lambda: call_of(api, call["id"])["status"] == "hangup", 10, what="hung up")
        assert call["activeflow_id"] in [a["id"] for a in ok(api.get("/v1.0/activeflows"))["result"]]
        r = api.delete(f"/v1.0/activeflows/{call['activeflow_id']}")
        assert r.status == 204 and r.body == b"", r  # No Content, as VoIPBIN answers
        d = ok(api.get(f"/v1.0/activeflows/{call['activeflow_id']}"))
        assert d["tm_delete"] != "9999-01-01 00:00:00.000000"
    finally:
        alice.stop()


def test_play_local_and_http(server, customer, tmp_path):
    """play: a WAV from the sounds directory (16 kHz, resampled), one fetched over HTTP, and a
    local file outside the sounds directory, which is refused (skipped)."""
    import http.server
    import os
    import subprocess

    def tone(path, hz, rate, seconds=1.5):
        subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "synth",
                        str(seconds), "sine", str(hz), "vol", "0.25"], check=True, timeout=30)

    sounds = os.path.join(server.data_dir, "sounds")
    os.makedirs(sounds, exist_ok=True)
    local = os.path.join(sounds, f"t{uuid.uuid4().hex}.wav")
    tone(local, 1000, 16000)
    outside = tmp_path / "outside.wav"
    tone(outside, 2000, 8000)
    served = tmp_path / "served.wav"
    tone(served, 1500, 8000)
    body = served.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    alice = phone(tmp_path, "alice", 440, auto_answer=True).listen()
    try:
        r = ok(customer.api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": alice.uri}],
            "actions": [{"type": "play", "option": {"stream_urls": [
                str(outside), os.path.join(sounds, "missing.wav"), local,
                f"http://127.0.0.1:{httpd.server_address[1]}/tone.wav"]}},
                {"type": "hangup"}]}))
        cid = r["calls"][0]["id"]
        wait_until(lambda: call_of(customer.api, cid)["status"] == "hangup", 20, what="played")
        assert call_of(customer.api, cid)["hangup_by"] == "local"
    finally:
        alice.stop()
        httpd.shutdown()
    heard, rate = alice.heard()
    t_local, t_http = onset(heard, rate, 1000), onset(heard, rate, 1500)
    assert t_local is not None and t_http is not None and t_http > t_local + 1.0, (t_local, t_http)
    assert onset(heard, rate, 2000) is None, "a file outside the sounds directory was played"
    # each refusal is logged with its real reason
    logs = server.all_logs()
    assert re.search(r'play location refused" .*outside\.wav" error="local files must be inside', logs)
    assert re.search(r'play location refused" .*missing\.wav" error="no such file"', logs), logs[-2000:]
