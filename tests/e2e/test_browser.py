"""Real browsers: Debian's headless Chromium joins a conference where a baresip phone plays a tone,
by WHIP (RFC 9725) from a web page on another origin (CORS), and by JsSIP over SIP-over-WebSocket
(RFC 7118). The phone's recording holds the browser's tones and the browser's (recorded in the page)
holds the phone's, never their own. With an Opus phone the call is HD voice end to end: both hear
the other's tone above 4 kHz, which an 8 kHz path would have removed."""

import time

import pytest

from browser import Browser, PageServer, have_chromium
from conftest import ok, wait_until
from phones import Phone, have_baresip, make_tones, max_tone_level, read_wav, joined

pytestmark = pytest.mark.skipif(not (have_baresip() and have_chromium()),
                                reason="baresip, sox, chromium and the JsSIP bundle are needed")

PHONE_LOW, PHONE_HIGH = 700, 5000
BROWSER_LOW, BROWSER_HIGH = 1100, 5500
G711_HZ = 440


def _opus_phone(tmp_path):
    wav = tmp_path / "phone.wav"
    make_tones(wav, [PHONE_LOW, PHONE_HIGH], seconds=40, rate=48000, channels=2)
    return Phone(tmp_path, "phone", wav, codec="opus")


def _browser_mic(tmp_path):
    wav = tmp_path / "mic.wav"
    make_tones(wav, [BROWSER_LOW, BROWSER_HIGH], seconds=40, rate=48000)
    return wav


def _run_page(tmp_path, api, conf_id, phone, n_joined=1, **query):
    pages = PageServer()
    browser = None
    try:
        wait_until(lambda: len(joined(api, conf_id)) == n_joined, 15, what="the phones joined")
        browser = Browser(pages.url(seconds=6, **query), _browser_mic(tmp_path),
                          str(tmp_path / "chromium.log"))
        result = pages.wait_result(60)
        logs = "\n".join(pages.logs)
        assert result, f"the page posted nothing\n{logs}"
        info, heard = result
        assert "error" not in info, f"the page failed: {info}\n{logs}"
        (tmp_path / "browser-heard.wav").write_bytes(heard)
        return info, logs
    finally:
        if browser:
            browser.stop()
        pages.close()


def _check_hd_both_ways(phone, tmp_path, logs):
    x, rate = phone.heard()
    assert len(x) > rate * 2, f"the phone recorded almost nothing\n{phone.log()[-2000:]}"
    assert rate >= 16000, f"the phone decoded at {rate} Hz"
    for hz in (BROWSER_LOW, BROWSER_HIGH):
        level = max_tone_level(x, rate, hz)
        assert level > 1000, f"the phone does not hear the browser's {hz} Hz ({level:.0f})"
    assert max_tone_level(x, rate, PHONE_LOW) < 300, "the phone hears itself"
    y, yrate = read_wav(str(tmp_path / "browser-heard.wav"))
    assert len(y) > yrate * 2, f"the browser recorded almost nothing\n{logs}"
    for hz in (PHONE_LOW, PHONE_HIGH):
        level = max_tone_level(y, yrate, hz)
        assert level > 1000, f"the browser does not hear the phone's {hz} Hz ({level:.0f})"
    assert max_tone_level(y, yrate, BROWSER_LOW) < 300, "the browser hears itself"


def test_browser_joins_by_whip_in_hd_voice(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="browser-whip")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phone = _opus_phone(tmp_path).dial(uri, seconds=60)
    try:
        whip = f"http://127.0.0.1:{server.port}/v1.0/conferences/{conf['id']}/whip"
        info, logs = _run_page(tmp_path, api, conf["id"], phone, mode="whip", whip=whip,
                               token=customer.token)
        assert info.get("delete_status") == "200", info
        assert info.get("codec", "").lower() == "audio/opus", info
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 10, what="the browser left")
        time.sleep(0.5)
    finally:
        phone.stop()
    _check_hd_both_ways(phone, tmp_path, logs)
    calls = ok(api.get("/v1.0/calls"))["result"]
    whip_calls = [c for c in calls if c["source"]["type"] == "web_session"]
    assert whip_calls and whip_calls[0]["status"] == "hangup", whip_calls


def test_browser_with_jssip_and_two_phones_one_on_g711(server, customer, tmp_path):
    """The issue's picture: a web page using JsSIP dials the conference's address over SIP over
    WebSocket and talks in HD voice with two SIP phones, one of them on G.711."""
    api = customer.api
    conf = customer.create_conference(name="browser-jssip")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phone = _opus_phone(tmp_path).dial(uri, seconds=60)
    g711_wav = tmp_path / "g711.wav"
    make_tones(g711_wav, [G711_HZ], seconds=40, rate=8000)
    g711 = Phone(tmp_path, "g711", g711_wav, codec="PCMU")
    try:
        wait_until(lambda: len(joined(api, conf["id"])) == 1, 15, what="the opus phone joined")
        g711.dial(uri, seconds=60)
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 15, what="the G.711 phone joined")
        info, logs = _run_page(tmp_path, api, conf["id"], phone, n_joined=2, mode="jssip",
                               ws=f"ws://127.0.0.1:{server.port}/sip",
                               target=f"sip:{conf['direct_hash']}@127.0.0.1")
        assert info.get("codec", "").lower() == "audio/opus", info
        wait_until(lambda: len(joined(api, conf["id"])) == 2, 10, what="the browser left")
    finally:
        phone.stop()
        g711.stop()
    _check_hd_both_ways(phone, tmp_path, logs)
    y, yrate = read_wav(str(tmp_path / "browser-heard.wav"))
    assert max_tone_level(y, yrate, G711_HZ) > 1000, "the browser does not hear the G.711 phone"
    x, rate = g711.heard()
    assert rate == 8000 and max_tone_level(x, rate, BROWSER_LOW) > 1000, \
        "the G.711 phone does not hear the browser"
    calls = ok(api.get("/v1.0/calls"))["result"]
    assert len([c for c in calls if c["status"] == "hangup"]) >= 1
