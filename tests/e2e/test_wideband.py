"""Wideband voice: baresip phones on Opus and G.722 and one on G.711 (PCMU) in one room. Each
hears the others and never itself; the wideband phones hear each other's tones above 4 kHz,
which an 8 kHz path would have removed; the G.711 phone hears the tones it can carry and no
high tone folded down into its band. The room's recording (16 kHz) holds every phone, the
wideband phones' tones above 4 kHz too."""

import pytest

from conftest import wait_until
from phones import (Phone, have_baresip, make_tone, make_tones, max_tone_level, read_wav,
                    record_room, joined)

pytestmark = pytest.mark.skipif(not have_baresip(), reason="baresip and sox are needed")

# name: (codec, low tone, high tone or None)
PHONES = {"opus": ("opus", 700, 5000), "g722": ("G722", 1100, 6000), "pcmu": ("PCMU", 440, None)}


def test_wideband_and_narrowband_in_one_room(server, customer, tmp_path):
    api = customer.api
    conf = customer.create_conference(name="wideband")
    uri = f"sip:{conf['direct_hash']}@127.0.0.1:{server.sip_port}"
    phones = {}
    try:
        for name, (codec, low, high) in PHONES.items():
            wav = tmp_path / f"{name}.wav"
            if high:  # baresip's file source must be at the codec's rate
                opus = codec == "opus"  # opus/48000/2 there: 48 kHz, two channels
                make_tones(wav, [low, high], seconds=30, rate=48000 if opus else 16000,
                           channels=2 if opus else 1)
            else:
                make_tone(wav, low, seconds=30)
            phones[name] = Phone(tmp_path, name, wav, codec=codec).dial(uri, seconds=40)
        wait_until(lambda: len(joined(api, conf["id"])) == 3, 15, what="three joined")
        record_room(api, conf["id"], 5, tmp_path / "room.wav")
    finally:
        for p in phones.values():
            p.stop()

    logs = {n: p.log()[-3000:] for n, p in phones.items()}
    rates = {}
    for name, p in phones.items():
        x, rate = p.heard()
        rates[name] = rate
        assert len(x) > rate * 2, f"{name} recorded almost nothing\n{logs[name]}"
        codec, low, high = PHONES[name]
        own = [max_tone_level(x, rate, hz) for hz in (low, high) if hz]
        assert max(own) < 300, f"{name} hears itself ({own})\n{logs[name]}"
        for other, (_, olow, ohigh) in PHONES.items():
            if other == name:
                continue
            level = max_tone_level(x, rate, olow)
            assert level > 1500, f"{name} does not hear {other}'s {olow} Hz ({level:.0f})"
            if not ohigh:
                continue
            if rate > 8000:  # wideband: the tone above 4 kHz arrives
                level = max_tone_level(x, rate, ohigh)
                assert level > 1500, (f"{name} ({codec}) does not hear {other}'s {ohigh} Hz "
                                      f"({level:.0f}): not wideband end to end")
            else:  # 8 kHz: cut, not folded down to 8000 - f
                alias = max_tone_level(x, rate, 8000 - ohigh)
                assert alias < 300, f"{name} hears {other}'s {ohigh} Hz folded to {8000 - ohigh}"
    # the phones decoded what they negotiated: wideband ones at 16 kHz or more
    assert rates["pcmu"] == 8000 and rates["g722"] >= 16000 and rates["opus"] >= 16000, rates

    x, rate = read_wav(str(tmp_path / "room.wav"))
    assert rate == 16000
    for name, (_, low, high) in PHONES.items():
        for hz in (low, high):
            if hz:
                level = max_tone_level(x, rate, hz)
                assert level > 1500, f"the room's recording lacks {name}'s {hz} Hz ({level:.0f})"
