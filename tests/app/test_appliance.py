"""The orchestrator with fakes injected through its constructor: the privacy invariant and pre-roll.

The fakes stand in for the microphone, speaker and Live session so that every block can be
checked the moment it is sent; the LEDs are the real Leds on gpiozero mock pins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.appliance import Appliance
from device.app.conversation import ANSWER_WAIT_S
from device.app.ports import Parts
from device.app.states import EndRequested, State
from device.audio.queues import DropOldestQueue
from device.config import Config
from device.events import (
    AudioBlock,
    ButtonReleased,
    EndCause,
    ErrorKind,
    InputTranscribed,
    ModelAudio,
    Opened,
    OutputTranscribed,
    SessionEvent,
    Trigger,
    TurnCompleted,
    TurnTranscribed,
    WakeDetected,
)
from device.leds import STATE_PATTERNS, Leds
from device.live.errors import BadKeyError
from device.timers.book import TimerBook
from device.timers.model import Outcome
from device.wakeword.preroll import PreRoll

pytestmark = pytest.mark.unit
BLOCK = 320  # 20 ms at 16 kHz
LISTENING = STATE_PATTERNS[State.LISTENING]


class FakeMic:
    """Blocks pushed by the test go to every consumer whose gate lets them through."""

    def __init__(self, preroll: PreRoll) -> None:
        self.consumers: dict[str, tuple[DropOldestQueue[AudioBlock], Any]] = {}
        self.position = 0
        self.preroll = preroll
        self.on = True
        self.history: list[AudioBlock] = []

    def add_consumer(self, name: str, max_blocks: int, gate: Any = None) -> Any:
        q: DropOldestQueue[AudioBlock] = DropOldestQueue(max_blocks, name)
        self.consumers[name] = (q, gate)
        return q

    def remove_consumer(self, name: str) -> None:
        self.consumers.pop(name, None)

    async def start(self) -> None:
        self.on = True

    async def stop(self) -> None:
        self.on = False

    def feed(self, loud: bool = True) -> AudioBlock:
        level = 3000 if loud else 0
        pcm = (level.to_bytes(2, "little", signed=True)) * BLOCK
        block = AudioBlock(pcm, self.position)
        self.history.append(block)
        self.position += BLOCK
        if self.on:
            self.preroll.add(block)  # the wake word path keeps the pre-roll
            for q, gate in self.consumers.values():
                if gate is None or gate(block):
                    q.put_nowait(block)
        return block


class FakeSpeaker:
    """Keeps what is played; 'plays' it when the test says so."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []
        self.played: list[bytes] = []
        self.flushes = 0
        self.volume = 50
        self.floor = 0
        self.alert: list[bytes] = []
        self.alerting = False
        self._drained = asyncio.Event()

    def play(self, pcm: bytes) -> None:
        self.queued.append(pcm)
        self._drained.clear()

    def play_sound(self, pcm: bytes) -> None:
        self.play(pcm)

    def flush(self) -> float:
        self.flushes += 1
        self.queued.clear()
        self._drained.set()
        return 0.0

    def finish(self) -> None:
        self.played += self.queued
        self.queued.clear()
        self._drained.set()

    async def drain(self) -> None:
        if self.queued:
            await self._drained.wait()

    @property
    def is_playing(self) -> bool:
        return bool(self.queued)

    def set_volume(self, level: int) -> int:
        self.volume = level
        return level

    def hold_volume_floor(self, level: int) -> None:
        self.floor = level

    def start_alert(self) -> None:
        self.alerting = True

    def play_alert(self, pcm: bytes) -> None:
        self.alert.append(pcm)

    def stop_alert(self) -> None:
        self.alerting = False
        self.alert.clear()


class FakeWake:
    def __init__(self) -> None:
        self.barge_in: list[bool] = []

    def set_barge_in(self, on: bool) -> None:
        self.barge_in.append(on)

    def set_stop_word(self, on: bool) -> None:
        self.stop_word = on


class FakeConversation:
    """Checks the LEDs at every block sent: the privacy invariant."""

    def __init__(self, leds: Leds, send_s: float = 0.0) -> None:
        self.leds = leds
        self.send_s = send_s
        self.sent: list[bytes] = []
        self.violations = 0
        self.causes: list[EndCause] = []
        self.server: asyncio.Queue[SessionEvent | None] = asyncio.Queue()

    async def send_audio(self, pcm: bytes) -> None:
        if self.leds.pattern != LISTENING:
            self.violations += 1
        self.sent.append(pcm)
        if self.send_s:
            await asyncio.sleep(self.send_s)  # like a websocket: written, then wait for drain

    async def send_audio_end(self) -> None:
        pass

    def ending(self, cause: EndCause) -> None:
        self.causes.append(cause)

    async def send_tool_response(self, call_id: str, name: str, result: dict[str, Any]) -> None:
        pass

    async def events(self) -> AsyncIterator[SessionEvent]:
        while (ev := await self.server.get()) is not None:
            yield ev


class FakeLive:
    def __init__(self, leds: Leds) -> None:
        self.leds = leds
        self.opened: list[FakeConversation] = []
        self.why: list[Opened] = []
        """What opened each session (the appliance says, for the upload ledger)."""
        self.fail_with: Exception | None = None
        self.send_s = 0.0
        """How long each send_audio takes (0: returns without yielding)."""
        self.gate = asyncio.Event()
        self.gate.set()
        self.notes: list[str] = []
        """The device note each session was opened with."""

    @asynccontextmanager
    async def session(
        self, resume: bool, may_send: Any, opened: Opened, note: str = ""
    ) -> AsyncIterator[FakeConversation]:
        self.why.append(opened)
        self.notes.append(note)
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        conv = FakeConversation(self.leds, self.send_s)
        self.opened.append(conv)
        yield conv


@pytest.fixture
def factory() -> Iterator[Any]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


async def until(cond: Any, limit_s: float = 5.0, feed: FakeMic | None = None) -> None:
    """Wait for cond(); with `feed`, the microphone keeps delivering (loud) blocks meanwhile."""
    async with asyncio.timeout(limit_s):
        while not cond():
            if feed is not None:
                feed.feed()
            await asyncio.sleep(0.005)


@asynccontextmanager
async def appliance(
    tmp_path: Path,
    factory: Any,
    clock: Any = None,
    echo_mode: str = "half_duplex",
    **conversation: float,
) -> AsyncIterator[tuple[Appliance, FakeMic, FakeSpeaker, FakeLive]]:
    cfg = Config.model_validate(
        {
            "state_dir": str(tmp_path),
            "audio": {"echo_mode": echo_mode},
            "conversation": {"no_speech_timeout_s": 1.0, **conversation},
        }
    )
    preroll = PreRoll(3.0)
    leds = Leds(cfg.leds, factory)
    mic, speaker, live = FakeMic(preroll), FakeSpeaker(), FakeLive(leds)
    parts = Parts(mic, mic, speaker, preroll, FakeWake(), live, leds)
    app = Appliance(cfg, parts, clock=clock) if clock else Appliance(cfg, parts)
    task = asyncio.create_task(app.run(), name="appliance")
    app.started(False)
    await until(lambda: app.state is State.IDLE)
    try:
        yield app, mic, speaker, live
    finally:
        await app.stop(2.0)
        await asyncio.wait_for(task, 5)
        leds.close()


async def test_audio_only_leaves_while_the_leds_show_listening(
    tmp_path: Path, factory: Any
) -> None:
    async with appliance(tmp_path, factory, follow_up_s=0.5) as (app, mic, speaker, live):
        for _ in range(50):  # idle: the wake word path hears it, nothing is sent
            mic.feed()
        live.gate.clear()  # the session takes a while to open
        wake_end = mic.position - 10 * BLOCK
        app.post(WakeDetected("hey_jarvis", 0.9, wake_end))
        await until(lambda: app.state is State.CONNECTING)
        for _ in range(20):
            mic.feed()
            await asyncio.sleep(0.002)
        live.gate.set()
        await until(lambda: app.state is State.LISTENING)
        for _ in range(20):
            mic.feed()
            await asyncio.sleep(0.002)
        conv = live.opened[0]
        await until(lambda: len(conv.sent) >= 50, feed=mic)
        # The answer: half duplex, nothing is sent while it plays.
        await conv.server.put(ModelAudio(b"\1\0" * 2400))
        await until(lambda: app.state is State.RESPONDING)
        n = len(conv.sent)
        for _ in range(20):
            mic.feed()
            await asyncio.sleep(0.002)
        assert len(conv.sent) == n
        await conv.server.put(TurnCompleted())
        speaker.finish()
        await until(lambda: app.state is State.LISTENING)
        # Silence through the follow-up window ends the conversation.
        while app.state is State.LISTENING:
            mic.feed(loud=False)
            await asyncio.sleep(0.02)
        assert app.state is State.IDLE
        n = len(conv.sent)
        for _ in range(20):
            mic.feed()
            await asyncio.sleep(0.002)
        assert len(conv.sent) == n
        assert conv.violations == 0


async def test_sent_audio_starts_at_the_wake_words_end_without_gaps(
    tmp_path: Path, factory: Any
) -> None:
    async with appliance(tmp_path, factory) as (app, mic, _, live):
        blocks = [mic.feed() for _ in range(30)]
        live.gate.clear()
        wake_end = blocks[-8].start + 100  # mid-block
        app.post(WakeDetected("hey_jarvis", 0.9, wake_end))
        await until(lambda: app.state is State.CONNECTING)
        for _ in range(10):
            mic.feed()
        live.gate.set()
        await until(lambda: app.state is State.LISTENING)
        conv = live.opened[0]
        await until(lambda: len(b"".join(conv.sent)) // 2 >= 60 * BLOCK, feed=mic)
        sent = b"".join(conv.sent)
        expected = b"".join(b.pcm for b in mic.history)[wake_end * 2 :]
        assert sent == expected[: len(sent)]


async def test_a_rejected_key_answers_the_next_wake_up_at_once(
    tmp_path: Path, factory: Any
) -> None:
    async with appliance(tmp_path, factory) as (app, mic, speaker, live):
        mic.feed()
        live.fail_with = BadKeyError("the API key was rejected")
        app.post(WakeDetected("hey_jarvis", 0.9, 0))
        await until(lambda: app.state is State.ERROR)
        assert app.status.error is ErrorKind.BAD_KEY
        assert speaker.queued  # the bad key sound
        live.gate.clear()  # a second dial would hang here
        app.post(WakeDetected("hey_jarvis", 0.9, 0))
        await asyncio.sleep(0.1)
        assert app.status.error is ErrorKind.BAD_KEY
        assert live.opened == []


async def test_no_speech_and_max_length_end_the_conversation(tmp_path: Path, factory: Any) -> None:
    now = [1000.0]
    async with appliance(
        tmp_path, factory, lambda: now[0], no_speech_timeout_s=5.0, max_conversation_s=60.0
    ) as (app, mic, speaker, _live):
        # Woken, but nobody speaks: the conversation ends after no_speech_timeout_s.
        app.post(WakeDetected("hey_jarvis", 0.9, 0))
        await until(lambda: app.state is State.LISTENING)
        mic.feed(loud=False)
        await asyncio.sleep(0.3)
        assert app.state is State.LISTENING
        now[0] += 5.1
        await until(lambda: app.state is State.IDLE)
        # The end chime: queued by the conversation's end action, which may run just after the
        # state turns idle (seen failing on the ordering under load, not on the chime).
        await until(lambda: bool(speaker.queued))
        # Someone keeps talking: max_conversation_s still ends it.
        app.post(WakeDetected("hey_jarvis", 0.9, mic.position))
        await until(lambda: app.state is State.LISTENING)
        for _ in range(13):
            now[0] += 4.9
            mic.feed()
            await asyncio.sleep(0.25)
            if app.state is not State.LISTENING:
                break
        assert app.state is State.IDLE
        assert now[0] - 1005.1 >= 60.0


async def test_silence_does_not_end_the_conversation_while_an_answer_is_pending(
    tmp_path: Path, factory: Any
) -> None:
    """The server heard the question (input transcript) and works on it (a tool call, a slow
    network): the no-speech window does not cut it off, but the wait is bounded."""
    now = [1000.0]
    async with appliance(tmp_path, factory, lambda: now[0], no_speech_timeout_s=5.0) as (
        app,
        _mic,
        _speaker,
        live,
    ):
        app.post(WakeDetected("hey_jarvis", 0.9, 0))
        await until(lambda: app.state is State.LISTENING)
        conv = live.opened[0]
        await conv.server.put(InputTranscribed("turn it down"))
        await asyncio.sleep(0.3)
        now[0] += 10.0  # twice the no-speech window, still waiting for the answer
        await asyncio.sleep(0.3)
        assert app.state is State.LISTENING
        await conv.server.put(ModelAudio(b"\1\0" * 2400))
        await until(lambda: app.state is State.RESPONDING)
        # A question the server never answers: the wait ends after ANSWER_WAIT_S.
        app.post(ButtonReleased())  # barge-in, back to listening
        await until(lambda: app.state is State.LISTENING)
        await conv.server.put(InputTranscribed("hmm"))
        await asyncio.sleep(0.3)
        now[0] += ANSWER_WAIT_S + 0.1
        await until(lambda: app.state is State.IDLE)


async def test_full_duplex_streams_while_answering_and_the_leds_say_so(
    tmp_path: Path, factory: Any
) -> None:
    async with appliance(tmp_path, factory, echo_mode="full_duplex") as (app, mic, _speaker, live):
        app.post(WakeDetected("hey_jarvis", 0.9, 0))
        await until(lambda: app.state is State.LISTENING)
        conv = live.opened[0]
        await conv.server.put(ModelAudio(b"\1\0" * 2400))
        await until(lambda: app.state is State.RESPONDING)
        n = len(conv.sent)
        await until(lambda: len(conv.sent) >= n + 20, feed=mic)  # headset / AEC: upload stays open
        assert conv.violations == 0  # ... and the LEDs show "sending" throughout
        assert factory.pin(22).state == 1 and factory.pin(17).state == 0


async def test_audio_buffered_while_connecting_stops_leaving_when_the_answer_starts(
    tmp_path: Path, factory: Any
) -> None:
    """What was said while connecting is flushed block by block, each a socket write; if the
    answer starts meanwhile (half duplex: the LEDs stop showing listening), the rest stays."""
    async with appliance(tmp_path, factory) as (app, mic, _speaker, live):
        live.send_s = 0.005
        live.gate.clear()
        app.post(ButtonReleased())
        await until(lambda: app.state is State.CONNECTING)
        for _ in range(300):  # 6 s said while the session opens
            mic.feed()
        live.gate.set()
        await until(lambda: app.state is State.LISTENING)
        conv = live.opened[0]
        mic.feed()  # the first live block starts the flush
        await until(lambda: len(conv.sent) >= 20)
        await conv.server.put(ModelAudio(b"\1\0" * 2400))
        await until(lambda: app.state is State.RESPONDING)
        await asyncio.sleep(0.3)
        assert conv.violations == 0
        assert 20 <= len(conv.sent) < 250


async def test_what_opened_each_session_reaches_the_live_client(
    tmp_path: Path, factory: Any
) -> None:
    """The upload ledger's trigger: the wake word with its score and voice, else the button."""
    async with appliance(tmp_path, factory, no_speech_timeout_s=1.0) as (app, mic, _, live):
        turns: list[TurnTranscribed] = []
        app.add_turn_listener(turns.append)
        mic.feed()
        app.post(WakeDetected("hey_jarvis", 0.91234, mic.position, voice="alice"))
        await until(lambda: app.state is State.LISTENING)
        conv = live.opened[0]
        await conv.server.put(InputTranscribed("what time is it"))
        await conv.server.put(OutputTranscribed("It is noon."))
        await conv.server.put(TurnCompleted())
        await until(lambda: len(turns) == 1)
        app.post(EndRequested())
        await until(lambda: app.state is State.IDLE)
        app.post(ButtonReleased())
        await until(lambda: len(live.why) == 2)
    assert live.why == [
        Opened(Trigger.WAKE_WORD, "hey_jarvis", 0.912, "alice"),
        Opened(Trigger.BUTTON),
    ]
    assert turns == [TurnTranscribed("what time is it", "It is noon.")]
    # Why each ended: asked to (end_conversation), then the shutdown at the end of the test.
    assert [c.causes for c in live.opened] == [[EndCause.ASKED], [EndCause.SHUTDOWN]]


async def test_the_next_conversation_is_told_once_what_rang_meanwhile(
    tmp_path: Path, factory: Any
) -> None:
    """A timer that went off while nobody talked goes to the next session as a device note
    (after the system instruction), and only to that one: told is kept in state_dir."""
    async with appliance(tmp_path, factory, no_speech_timeout_s=1.0) as (app, _, _, live):
        app.timers.add_timer(0.05, "pasta")
        await asyncio.sleep(0.1)
        assert [d.outcome for d in app.timers.check()] == [Outcome.RANG]
        for n in (1, 2):
            app.post(ButtonReleased())
            await until(lambda n=n: len(live.opened) == n and app.state is State.LISTENING)
            app.post(EndRequested())
            await until(lambda: app.state is State.IDLE)
    assert "the pasta timer went off" in live.notes[0]
    assert live.notes[1] == ""
    assert TimerBook(tmp_path).untold(3600.0) == []
