"""5,000 conferences on a 100-port RTP range. Each conference has a mixing room, and the rooms used
to live in an array sized from the port range: about 100 creates corrupted the heap, and every
restart crashed again recovering them. Now rooms are not limited by ports; the limit is the
max_conferences setting (per customer, 429 naming it), and recovery brings back every live
conference even when the store holds more than the new setting allows."""

import http.client
import json
import random
import re
import threading
import time

from conftest import err, ok, wait_until
from phones import RawCall

CONFERENCES = 5000


def _create_many(server, token, n, threads=4):
    """n POST /v1.0/conferences over keep-alive connections from a few threads; returns the
    answers as (status, body) in no particular order."""
    out = []
    lock = threading.Lock()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(count, k):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        got = []
        try:
            for i in range(count):
                body = json.dumps({"type": "conference", "name": f"flood-{k}-{i}"})
                conn.request("POST", "/v1.0/conferences", body=body,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
                r = conn.getresponse()
                got.append((r.status, r.read()))
        except (OSError, http.client.HTTPException) as e:  # the server went away
            got.append((0, repr(e).encode()))
        finally:
            conn.close()
            with lock:
                out.extend(got)

    ts = [threading.Thread(target=worker, args=(c, k), daemon=True) for k, c in enumerate(per)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    return out


def _joined_one(api, conf_id):
    c = ok(api.get(f"/v1.0/conferences/{conf_id}"))
    return len(c["conferencecall_ids"]) == 1 and c


def _call_in(server, api, conf):
    """A caller dials the conference's direct URI and is joined (its media leg needs one of the
    few RTP ports), then hangs up."""
    call = RawCall(server.sip_port, f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}")
    try:
        assert call.connect() == 200
        wait_until(lambda: _joined_one(api, conf["id"]), 10, what="the caller joined")
        call.hangup()
        wait_until(lambda: ok(api.get(f"/v1.0/conferences/{conf['id']}"))["conferencecall_ids"] == [],
                   10, what="the caller left")
    finally:
        call.close()


def test_5000_conferences_on_100_ports(server_factory):
    t_start = time.monotonic()
    base = random.randrange(30000, 39800, 2)
    ports = f"{base}-{base + 99}"
    srv = server_factory("rooms", extra_args=["--rtp-ports", ports, "--max-conferences", "6000"])
    cust = srv.new_customer()
    answers = _create_many(srv, cust.token, CONFERENCES)
    bad = [(s, b[:200]) for s, b in answers if s != 200]
    assert not bad, f"{len(bad)} creates failed, e.g. {bad[:3]}\n{srv.log_tail(20)}"
    assert srv.alive()
    confs = [json.loads(b) for _, b in answers]
    assert len({c["id"] for c in confs}) == CONFERENCES
    assert all(c["status"] == "progressing" for c in confs)
    took = time.monotonic() - t_start

    # the server still serves everyone: lists, another customer, a call with real media
    page = ok(cust.api.get("/v1.0/conferences", query={"page_size": 5}))
    assert len(page["result"]) == 5
    other = srv.new_customer()
    other.create_conference(name="still-works")
    _call_in(srv, cust.api, confs[-1])

    # a restart with a limit below what is stored: every conference comes back
    assert srv.stop() == 0
    srv.extra_args[srv.extra_args.index("--max-conferences") + 1] = "1000"
    srv.start(timeout=30)
    assert srv.alive()
    logs = srv.log_tail(400)
    assert re.search(r'more conferences than max_conferences" customer_id=%s conferences=%d '
                     r'max_conferences=1000' % (cust.id, CONFERENCES), logs), logs[-3000:]
    api = srv.api(srv.login(cust.username, cust.password))
    for c in random.sample(confs, 25) + [confs[0], confs[-1]]:
        assert ok(api.get(f"/v1.0/conferences/{c['id']}"))["status"] == "progressing"

    # new ones are refused with 429, naming the setting and its value
    e = err(api.post("/v1.0/conferences", {"type": "conference"}), 429, "RESOURCE_EXHAUSTED",
            "TOO_MANY_CONFERENCES")
    assert "max_conferences" in e["message"] and "1000" in e["message"], e
    # others are not affected, and a recovered room still mixes
    ok(srv.api(srv.login(other.username, other.password)).post("/v1.0/conferences",
                                                                {"type": "conference"}))
    _call_in(srv, api, confs[len(confs) // 2])
    # ending one is not enough while 4,999 remain
    ok(api.delete(f"/v1.0/conferences/{confs[1]['id']}"))
    err(api.post("/v1.0/conferences", {"type": "conference"}), 429, "RESOURCE_EXHAUSTED",
        "TOO_MANY_CONFERENCES")
    assert srv.stop() == 0
    print(f"{CONFERENCES} creates in {took:.1f} s; whole replay {time.monotonic() - t_start:.1f} s")
    assert time.monotonic() - t_start < 90
