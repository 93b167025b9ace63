"""Fidelity with the VoIPBIN description: a time that has not happened yet is the seeds' sentinel
"9999-01-01 00:00:00.000000" everywhere (only the Conference's tm_end is null until it ends);
list sizes above 100 are clamped; DELETE of an activeflow answers 204."""

import socket

from conftest import TM_NEVER, ok


def nulls(v, path=""):
    """Every path in a JSON value whose value is null."""
    if v is None:
        return [path]
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in nulls(x, f"{path}.{k}")]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in nulls(x, f"{path}[{i}]")]
    return []


def test_unset_times_are_the_sentinel(server, customer):
    api = customer.api
    flow = ok(api.post("/v1.0/flows", {"name": "f", "actions": [{"type": "hangup"}]}))
    num = ok(api.post("/v1.0/numbers", {"number": "+1555" + str(abs(hash(customer.id)))[:7],
                                        "call_flow_id": flow["id"]}))
    assert num["tm_renew"] == TM_NEVER, num
    # an outgoing call to a port where nothing answers: not ringing, not answered, not over yet
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        r = ok(api.post("/v1.0/calls", {
            "destinations": [{"type": "sip", "target": f"sip:nobody@127.0.0.1:{sink.getsockname()[1]}"}],
            "actions": [{"type": "hangup"}]}))
        call = r["calls"][0]
        for f in ("tm_ringing", "tm_progressing", "tm_hangup", "tm_delete"):
            assert call[f] == TM_NEVER, (f, call)
        got = ok(api.get(f"/v1.0/calls/{call['id']}"))
        assert got["tm_hangup"] == TM_NEVER or got["status"] == "hangup"
        ok(api.post(f"/v1.0/calls/{call['id']}/hangup"))  # CANCELs once a provisional comes
    finally:
        sink.close()
    conf = customer.create_conference(name="n")
    assert conf["tm_end"] is None
    key = customer.create_accesskey()
    objects = [("number", num), ("call", got), ("conference", conf), ("flow", flow),
               ("accesskey", ok(api.get(f"/v1.0/accesskeys/{key['id']}"))),
               ("customer", ok(api.get("/v1.0/customer")))]
    for name, obj in objects:
        found = [p for p in nulls(obj) if not (name == "conference" and p == ".tm_end")]
        assert not found, (name, found, obj)
