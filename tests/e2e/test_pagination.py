"""List paging: page_size, page_token (tm_create and RFC 3339), newest first, no repeats or skips."""

import threading

import pytest

from conftest import err, list_all, ok, parse_ts


@pytest.fixture(scope="module")
def paged(server):
    """A customer with 7 conferences, newest last in `ids`."""
    cust = server.new_customer()
    ids = [cust.create_conference(name=f"p{i}")["id"] for i in range(7)]
    return cust, ids


def walk(api, path, page_size, query=None):
    pages = []
    token = None
    for _ in range(50):
        q = dict(query or {})
        q["page_size"] = page_size
        if token is not None:
            q["page_token"] = token
        body = ok(api.get(path, query=q))
        assert set(body) >= {"result", "next_page_token"}, body
        assert isinstance(body["result"], list)
        pages.append(body)
        if not body["result"]:
            assert body["next_page_token"] == "", body
            return pages
        assert body["next_page_token"] == body["result"][-1]["tm_create"], body
        token = body["next_page_token"]
    raise AssertionError("walk did not end")


def test_walk_page_size_3(server, paged):
    cust, ids = paged
    pages = walk(cust.api, "/v1.0/conferences", 3)
    sizes = [len(p["result"]) for p in pages]
    assert sizes == [3, 3, 1, 0], sizes
    seen = [c["id"] for p in pages for c in p["result"]]
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert seen == list(reversed(ids)), "newest first, nothing skipped"
    stamps = [parse_ts(c["tm_create"]) for p in pages for c in p["result"]]
    assert stamps == sorted(stamps, reverse=True)
    assert pages[-1] == {"result": [], "next_page_token": ""}


def test_default_and_max_page_size(server, paged):
    cust, ids = paged
    body = ok(cust.api.get("/v1.0/conferences"))
    assert [c["id"] for c in body["result"]] == list(reversed(ids))
    body = ok(cust.api.get("/v1.0/conferences", query={"page_size": 100}))
    assert len(body["result"]) == 7
    body = ok(cust.api.get("/v1.0/conferences", query={"page_size": 1}))
    assert [c["id"] for c in body["result"]] == [ids[-1]]


def test_page_size_above_100_is_clamped(server):
    """As VoIPBIN does: page_size above 100 gives pages of 100 (not an error)."""
    cust = server.new_customer()
    for i in range(103):
        cust.create_conference(name=f"c{i}")
    for value in ("101", "500", "99999999999999999999999"):
        body = ok(cust.api.get("/v1.0/conferences", query={"page_size": value}))
        assert len(body["result"]) == 100, (value, len(body["result"]))
    rest = ok(cust.api.get("/v1.0/conferences", query={"page_size": "101", "page_token": body["next_page_token"]}))
    assert len(rest["result"]) == 3


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "1e2", "5x", "0x10", "000"])
def test_bad_page_size(server, paged, value):
    cust, _ = paged
    err(cust.api.get("/v1.0/conferences", query={"page_size": value}), 400, "INVALID_ARGUMENT",
        "INVALID_PAGE_SIZE")


@pytest.mark.parametrize("path", ["/v1.0/agents", "/v1.0/accesskeys", "/v1.0/conferencecalls"])
def test_bad_page_size_other_lists(server, paged, path):
    cust, _ = paged
    err(cust.api.get(path, query={"page_size": "0"}), 400, "INVALID_ARGUMENT", "INVALID_PAGE_SIZE")
    err(cust.api.get(path, query={"page_token": "yesterday"}), 400, "INVALID_ARGUMENT", "INVALID_PAGE_TOKEN")


@pytest.mark.parametrize("value", ["garbage", "2021-13-45 99:99:99.000000", "12345",
                                   "2021-02-03 10:44:42.163464xyz", "../../etc/passwd", "' OR 1=1 --", "\x00",
                                   "2999-01-01T00:00:00Z\x00junk"])
def test_bad_page_token(server, paged, value):
    cust, _ = paged
    err(cust.api.get("/v1.0/conferences", query={"page_token": value}), 400, "INVALID_ARGUMENT",
        "INVALID_URI" if "\x00" in value else "INVALID_PAGE_TOKEN")


def test_rfc3339_page_tokens(server, paged):
    cust, ids = paged
    for tok in ("2999-01-01T00:00:00Z", "2999-01-01T00:00:00.000000Z", "2999-01-01T00:00:00+00:00"):
        body = ok(cust.api.get("/v1.0/conferences", query={"page_token": tok}))
        assert [c["id"] for c in body["result"]] == list(reversed(ids)), tok
    for tok in ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00.123Z"):
        assert ok(cust.api.get("/v1.0/conferences", query={"page_token": tok})) == {"result": [],
                                                                                    "next_page_token": ""}


def test_page_token_is_exclusive(server, paged):
    cust, ids = paged
    items = ok(cust.api.get("/v1.0/conferences"))["result"]
    # legacy form: strictly older than the token
    body = ok(cust.api.get("/v1.0/conferences", query={"page_token": items[2]["tm_create"]}))
    assert [c["id"] for c in body["result"]] == [c["id"] for c in items[3:]]
    # the same instant in RFC 3339
    t = parse_ts(items[2]["tm_create"])
    rfc = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = ok(cust.api.get("/v1.0/conferences", query={"page_token": rfc}))
    assert [c["id"] for c in body["result"]] == [c["id"] for c in items[3:]]


def test_walk_while_inserting(server):
    cust = server.new_customer()
    ids = [cust.create_conference(name=f"w{i}")["id"] for i in range(6)]
    seen = []
    token = None
    for step in range(20):
        q = {"page_size": 2}
        if token:
            q["page_token"] = token
        body = ok(cust.api.get("/v1.0/conferences", query=q))
        if not body["result"]:
            break
        seen.extend(c["id"] for c in body["result"])
        token = body["next_page_token"]
        cust.create_conference(name=f"new{step}")  # appears at the head, must not disturb the walk
    assert len(seen) == len(set(seen))
    assert seen == list(reversed(ids))


def test_deleted_excluded_from_list(server):
    cust = server.new_customer()
    ids = [cust.create_conference()["id"] for _ in range(4)]
    ok(cust.api.delete(f"/v1.0/conferences/{ids[1]}"))
    got = [c["id"] for c in list_all(cust.api, "/v1.0/conferences", page_size=1)]
    assert got == [ids[3], ids[2], ids[0]]


def test_other_lists_page(server):
    cust = server.new_customer()
    keys = [cust.create_accesskey(name=f"k{i}")["id"] for i in range(3)]
    pages = walk(cust.api, "/v1.0/accesskeys", 2)
    got = [k["id"] for p in pages for k in p["result"]]
    assert got == list(reversed(keys))
    agents = [cust.create_agent()[0]["id"] for _ in range(2)]
    pages = walk(cust.api, "/v1.0/agents", 1)
    got = [a["id"] for p in pages for a in p["result"]]
    assert len(got) == 3 and got[:2] == list(reversed(agents))
    # operator's customer list pages too
    pages = walk(server.operator(), "/v1.0/customers", 5)
    got = [c["id"] for p in pages for c in p["result"]]
    assert len(got) == len(set(got)) and cust.id in got


def test_concurrent_creates_page_without_loss(server):
    cust = server.new_customer()
    ids = []
    errors = []
    lock = threading.Lock()

    def worker():
        for _ in range(5):
            try:
                c = ok(cust.api.post("/v1.0/conferences", {"type": "conference"}))
                with lock:
                    ids.append(c["id"])
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    assert len(ids) == 40 and len(set(ids)) == 40
    for size in (1, 3, 7):
        got = [c["id"] for c in list_all(cust.api, "/v1.0/conferences", page_size=size)]
        assert len(got) == len(set(got)), f"repeats with page_size={size}"
        assert set(got) == set(ids), f"skipped {len(set(ids) - set(got))} with page_size={size}"
