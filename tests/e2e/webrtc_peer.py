"""A scripted WebRTC caller for end-to-end tests: aiortc (an independent ICE, DTLS-SRTP and Opus
implementation) makes a browser-style offer, a raw SIP INVITE carries it to the server, and the
peer then sends a WAV file as its microphone and records what it hears to another WAV file.
Loopback only: aioice leaves 127.0.0.1 out of its host candidates, so the peer offers it here."""

import asyncio
import threading

from phones import RawCall


def have_aiortc():
    try:
        import aiortc  # noqa: F401
        return True
    except ImportError:
        return False


def _loopback_only():
    import aioice.ice
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class WebRtcCall(RawCall):
    """INVITE with aiortc's offer; once answered, ICE, DTLS and SRTP run against the server and
    the WAV plays; stop() ends the recording (and hangs up unless told not to)."""

    def __init__(self, sip_port, ruri, play_wav, record_wav, offer_filter=None):
        super().__init__(sip_port, ruri)
        self.play_wav = play_wav
        self.record_wav = record_wav
        self.offer_filter = offer_filter  # rewrites the offer's SDP (tests of refusals)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pc = None
        self.recorder = None
        self.ice_state = []  # the ICE connection states aiortc went through
        self._sdp = self._run(self._make_offer())

    def _run(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _make_offer(self):
        from aiortc import RTCPeerConnection
        from aiortc.contrib.media import MediaPlayer, MediaRecorder
        _loopback_only()
        self.pc = RTCPeerConnection()
        self.player = MediaPlayer(str(self.play_wav))
        self.pc.addTrack(self.player.audio)
        self.recorder = MediaRecorder(str(self.record_wav))

        @self.pc.on("track")
        def on_track(track):
            self.recorder.addTrack(track)

        @self.pc.on("iceconnectionstatechange")
        def on_ice():
            self.ice_state.append(self.pc.iceConnectionState)

        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        return self.offer_filter(sdp) if self.offer_filter else sdp

    def offer(self):
        return self._sdp

    def connect(self, timeout=5.0, ack=True):
        """INVITE / final answer / ACK (see RawCall.connect); on 200 the media starts."""
        code = super().connect(timeout, ack)
        if code == 200:
            self._run(self._start())
        return code

    async def _start(self):
        from aiortc import RTCSessionDescription
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer, type="answer"))
        await self.recorder.start()

    def dtls_state(self):
        t = self.pc.getTransceivers()[0]
        return t.sender.transport.state if t.sender.transport else None

    def stop(self, hangup=True):
        async def finish():
            if self.recorder:
                await self.recorder.stop()
            if self.pc:
                await self.pc.close()
        try:
            self._run(finish())
        finally:
            if hangup and self.answer:
                self.hangup()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.close()
