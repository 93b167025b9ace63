"""Connection exhaustion: one client address opens 4,100 silent TCP connections (and trickles bytes
on others); every other client keeps being served at once, the attacker's connections beyond its
share are refused with a JSON answer naming the setting, and the ones it holds are closed at the
request deadline."""

import json
import resource
import socket
import time

import pytest

from conftest import ok

ATTACK = 4100
PER_ADDRESS = 256
DEADLINE_MS = 3000


@pytest.fixture
def fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, ATTACK + 2048)
    if want < ATTACK + 512:
        pytest.skip(f"the open-file limit ({hard}) is too low for {ATTACK} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def timed_get(api, path, src):
    """A GET from another client address (src), on a fresh connection; returns (status, seconds)."""
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", api.server.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              f"Authorization: Bearer {api.token}\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]), time.monotonic() - t0


def test_idle_connections_cannot_lock_out_others(server_factory, fds):
    srv = server_factory(extra_args=["--http-request-timeout-ms", str(DEADLINE_MS),
                                     "--http-max-connections-per-address", str(PER_ADDRESS)])
    api = srv.operator()
    held, refused, answers = [], 0, []
    t0 = time.monotonic()
    for i in range(ATTACK):
        s = socket.socket()
        s.setblocking(True)
        s.settimeout(5)
        s.bind(("127.0.0.1", 0))
        try:
            s.connect(("127.0.0.1", srv.port))
        except OSError:
            refused += 1
            s.close()
            continue
        held.append(s)
        if i % 500 == 0:  # others are served while the attack goes on
            status, took = timed_get(api, "/v1.0/customer", "127.0.0.2")
            answers.append((status, took))
    opened = time.monotonic() - t0
    try:
        # every other client is served at once
        for src in ("127.0.0.2", "127.0.0.3"):
            status, took = timed_get(api, "/v1.0/customer", src)
            answers.append((status, took))
        assert all(st == 200 for st, _ in answers), answers
        worst = max(t for _, t in answers)
        assert worst < 1.0, f"another client waited {worst:.2f}s during the attack"
        # the attacker's connections beyond its share were answered 429 and closed
        closed_at_once, bodies = 0, []
        for s in held[PER_ADDRESS + 50:]:
            s.settimeout(0.5)
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            if data.startswith(b"HTTP/1.1 429"):
                closed_at_once += 1
                if not bodies:
                    bodies.append(data)
        assert closed_at_once >= len(held) - PER_ADDRESS - 100, (closed_at_once, len(held))
        body = json.loads(bodies[0].split(b"\r\n\r\n", 1)[1])
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "http_max_connections_per_address" in body["error"]["message"]
        # the ones it holds are closed at the request deadline
        time.sleep(DEADLINE_MS / 1000 + 1.0)
        still = 0
        for s in held[:PER_ADDRESS]:
            s.settimeout(0.2)
            try:
                if s.recv(1) != b"":
                    still += 1
            except socket.timeout:
                still += 1
            except OSError:
                pass
        assert still == 0, f"{still} idle connections outlived the request deadline"
        # and the attacker's own address can connect again
        status, took = timed_get(api, "/v1.0/customer", "127.0.0.1")
        assert status == 200
        print(f"\n{len(held)} connections opened in {opened:.1f}s ({refused} refused by the kernel); "
              f"{closed_at_once} answered 429 at once; worst latency for others {worst * 1000:.0f} ms")
    finally:
        for s in held:
            s.close()


def test_trickled_request_heads_are_cut_at_the_deadline(server_factory):
    srv = server_factory(extra_args=["--http-request-timeout-ms", str(DEADLINE_MS)])
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /v1.0/customer HTTP/1.1\r\n")
        socks.append(s)
    t0 = time.monotonic()
    open_ = set(range(len(socks)))
    while open_ and time.monotonic() - t0 < DEADLINE_MS / 1000 + 3:
        for i in list(open_):
            try:
                socks[i].sendall(b"X-Slow: 1\r\n")  # a header line every half second, never the end
            except OSError:
                open_.discard(i)
        time.sleep(0.5)
        for i in list(open_):
            socks[i].setblocking(False)
            try:
                if socks[i].recv(100) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
            socks[i].setblocking(True)
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} trickling connections were never closed"
    assert took < DEADLINE_MS / 1000 + 2.5, took
    ok(srv.operator().get("/v1.0/customer"))
