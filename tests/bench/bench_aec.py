"""Echo cancellation benchmark (not a test):
`uv run python -m tests.bench.bench_aec [--answers N] [--rooms 10 30 60] [--skip-wake]`.

On a private PulseAudio card with a 48 kHz stereo speaker and a 44.1 kHz microphone, and a room
feeding the speaker back into the mic at -10 dB (device.simhw.room: 30 and 60 ms with RT60 0.2 s
through the filter pipes; 10 ms through PulseAudio's loopback, without reverberation):
- echo: N answers of 6 s in a row, nobody talking, through one canceller (as the daemon keeps
  it), and N more through one without its echo lock (device.audio.aec.EchoLock); per answer
  the echo reduction of the upload against the same room without the canceller (measured in
  the same run; the answers that began before the canceller was trusted with the upload, held
  as in half duplex, are counted apart), whether the simulator's voice activity detection
  hears a turn in it, and the timelines' events during it (reference restarts and one-tick
  steps, microphone clock re-anchors);
- wake over answer: "Hey Jarvis, stop" said over N answers in several voices, detected by the
  daemon's wake-word path at its barge-in threshold in half duplex (the microphone as captured)
  and in aec mode (the cancelled and the captured signal, either detecting), and from the same
  aec takes each of the two alone;
- cpu: CPU seconds per second of audio of the canceller (16 kHz mono, 20 ms blocks) next to
  the daemon's wake-word path on the same audio, on one lane and on two (aec mode while the
  speaker plays), in the same run.
`--busy-thread`: a pure-Python thread holds the GIL beside the audio callbacks all the while (a
daemon whose loop is busy), so that they run late (tests/bench/bench_stream_time.py); the CPU
numbers are then not comparable.
Writes bench-results/aec.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.audio.aec import FRAME, EchoCanceller, EchoReference
from device.config import WakewordConfig
from device.events import MIC_RATE, MODEL_RATE, AudioBlock
from device.simhw.pulse import VirtualSoundCard
from device.simhw.room import PIPE_DELAY_MS, EchoRoom, LoopbackRoom, room_response
from device.simhw.speech import synthesize
from device.wakeword.detector import Detector
from tests.audio.rig import busy
from tests.audio.test_aec import ANSWER, Station, Take, power_db, vad_starts


def room(card: VirtualSoundCard, delay_ms: int) -> EchoRoom | LoopbackRoom:
    """The rig's room with this delay: below the pipes' delay, the loopback (no reverberation)."""
    if delay_ms < PIPE_DELAY_MS:
        return LoopbackRoom(card, delay_ms=delay_ms, attenuation_db=10)
    return EchoRoom(card, delay_ms=delay_ms, attenuation_db=10, rt60_s=0.2)


async def echo(card: VirtualSoundCard, delay_ms: int, answers: int) -> dict[str, Any]:
    """The room's echo without the canceller, then `answers` answers through one canceller with
    the echo lock (shipped) and as many through one without it, in the same room and run."""
    answer = synthesize(ANSWER, MODEL_RATE)[: MODEL_RATE * 6]
    runs: dict[bool, tuple[list[Take], list[list[int]], list[bool]]] = {}
    with room(card, delay_ms):
        async with Station(card, aec=False).running() as plain:
            raw = await plain.answer(answer)
        for lock in (True, False):
            async with Station(card, aec=True, lock=lock).running() as cancelled:
                takes, events, opened = [], [], []
                assert cancelled.canceller is not None
                for _ in range(answers):
                    before = timeline_events(cancelled)
                    opened.append(cancelled.canceller.learned())
                    takes.append(await cancelled.answer(answer))
                    after = timeline_events(cancelled)
                    events.append([a - b for a, b in zip(after, before, strict=True)])
                runs[lock] = takes, events, opened

    def summary(takes: list[Take], opened: list[bool]) -> dict[str, Any]:
        """Echo reduction of the upload per answer; the answers over which the upload was held
        at the start (the canceller not yet trusted: half duplex) are counted apart."""
        erle = [round(power_db(raw.during) - power_db(t.during), 1) for t in takes]
        uploaded = [e for e, o in zip(erle, opened, strict=True) if o]
        return {
            "erle_db": erle,
            "answers_held": opened.count(False),
            "answers_uploaded": len(uploaded),
            "erle_median_db": float(np.median(uploaded)) if uploaded else None,
            "answers_at_25db": sum(e >= 25 for e in uploaded),
            "answers_heard_as_speech": sum(bool(vad_starts(t.during)) for t in takes),
        }

    return {
        "delay_ms": delay_ms,
        "echo_db": round(power_db(raw.during), 1),
        **summary(runs[True][0], runs[True][2]),
        "timeline_events": runs[True][1],
        "without_lock": summary(runs[False][0], runs[False][2]),
        "without_aec_heard_as_speech": bool(vad_starts(raw.during)),
    }


def timeline_events(station: Station) -> tuple[int, int, int]:
    """(reference restarts, reference one-tick steps, microphone clock re-anchors) so far."""
    assert station.canceller is not None
    ref = station.canceller.reference
    return ref.restarts, ref.steps, station.mic.clock_reanchors


VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp", "en-us+m3")


def detected(audio: np.ndarray, uncancelled: np.ndarray | None = None) -> bool:
    """The daemon's wake-word path, at its barge-in threshold (the speaker plays), hears the
    wake word in `audio` (16 kHz; with `uncancelled`, the same span before the canceller, as
    the microphone hands both over in aec mode)."""
    detector = Detector(WakewordConfig())
    detector.set_barge_in(True)
    step = 2 * FRAME

    def block(i: int) -> AudioBlock:
        raw = None if uncancelled is None else uncancelled[i : i + step].tobytes()
        return AudioBlock(audio[i : i + step].tobytes(), i, raw)

    return any(detector.process(block(i)) for i in range(0, len(audio) - step + 1, step))


async def wake_over_answer(card: VirtualSoundCard, trials: int) -> dict[str, Any]:
    """ "Hey Jarvis, stop" said over an answer in the 60 ms room: what the wake-word path hears
    in half duplex (the microphone as captured) and in aec mode (the cancelled signal and the
    captured one, as the daemon listens); and, from the same aec takes, what the cancelled
    signal alone and the captured one alone would have found."""
    answer = synthesize(ANSWER, MODEL_RATE)[: MODEL_RATE * 6]
    said = [
        synthesize(
            "hey jarvis, stop", MIC_RATE, voice=VOICES[i % len(VOICES)], speed=150 + 10 * (i % 3)
        )
        for i in range(trials)
    ]
    hits = dict.fromkeys(("half_duplex", "aec", "aec_cancelled_only", "aec_uncancelled_only"), 0)
    with EchoRoom(card, delay_ms=60, attenuation_db=10, rt60_s=0.2):
        for mode in ("half_duplex", "aec"):
            station = Station(card, aec=mode == "aec")
            station.upload = station.mic.add_consumer("wake", 100_000)  # ungated, as the wake path
            async with station.running():
                for _ in range(6):  # the canceller learns the room first, until it is trusted
                    await station.answer(answer)
                    if station.canceller is None or station.canceller.learned():
                        break
                for words in said:
                    take = await station.answer(answer, user=words, user_after_s=2.0)
                    hits[mode] += detected(take.during, take.uncancelled)
                    if mode == "aec":
                        assert take.uncancelled is not None, "the canceller did not cancel"
                        hits["aec_cancelled_only"] += detected(take.during)
                        hits["aec_uncancelled_only"] += detected(take.uncancelled)
    return {"trials": trials, **{f"{k}_detected": v for k, v in hits.items()}}


def cpu(seconds: int = 60) -> dict[str, float]:
    """CPU per second of audio: the canceller (speech playing, echo in the mic) and the wake
    word path, on the same 16 kHz audio, best of 3."""
    rng = np.random.default_rng(0)
    far = synthesize(ANSWER, MIC_RATE).astype(np.float64)
    far = np.tile(far, seconds * MIC_RATE // len(far) + 1)[: seconds * MIC_RATE]
    near = np.convolve(far, room_response(0.04, 10, 0.2, rng))[: len(far)]
    near16 = np.clip(near, -32768, 32767).astype(np.int16)
    played = (far / 32767).astype(np.float32)
    blocks = [
        AudioBlock(near16[i : i + 2 * FRAME].tobytes(), i) for i in range(0, len(near16), 2 * FRAME)
    ]

    def run_aec(lock: bool = True) -> float:
        ref, t0 = EchoReference(), 1000.0
        canceller = EchoCanceller(ref, lock=lock)
        start = time.process_time()
        for b in blocks:
            ref.put(t0 + (b.start + 800) / MIC_RATE, played[b.start + 800 : b.end + 800], MIC_RATE)
            canceller.process(b, t0 + b.start / MIC_RATE)
        return (time.process_time() - start) / seconds

    def run_wake(two_lanes: bool) -> float:
        detector = Detector(WakewordConfig())
        detector.set_barge_in(two_lanes)
        fed = [AudioBlock(b.pcm, b.start, b.pcm) for b in blocks] if two_lanes else blocks
        start = time.process_time()
        for b in fed:
            detector.process(b)
        return (time.process_time() - start) / seconds

    aec = min(run_aec() for _ in range(3))
    unlocked = min(run_aec(False) for _ in range(3))
    wake = min(run_wake(False) for _ in range(3))
    wake2 = min(run_wake(True) for _ in range(3))
    return {
        "aec_cpu_per_s": round(aec, 4),
        "aec_without_lock_cpu_per_s": round(unlocked, 4),
        "wake_cpu_per_s": round(wake, 4),
        "wake_two_lanes_cpu_per_s": round(wake2, 4),
        "aec_over_wake": round(aec / wake, 2),
        "two_lanes_over_one": round(wake2 / wake, 2),
    }


async def main_async(answers: int, delays: list[int], wake_too: bool) -> dict[str, Any]:
    with VirtualSoundCard(mic_rate=44100) as card:
        import sounddevice as sd

        sd._terminate()
        sd._initialize()
        rooms = [await echo(card, d, answers) for d in delays]
        wake = await wake_over_answer(card, answers) if wake_too else None
    return {"rooms": rooms, "wake_over_answer": wake, "cpu": cpu()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=20)
    ap.add_argument(
        "--rooms", type=int, nargs="*", default=[10, 30, 60], help="delays, ms (none: skip)"
    )
    ap.add_argument("--skip-wake", action="store_true", help="only the rooms' echo and the CPU")
    ap.add_argument(
        "--busy-thread",
        action="store_true",
        help="a pure-Python thread holds the GIL beside the audio callbacks (a daemon's busy loop)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench-results/aec.json"))
    args = ap.parse_args()
    stop = threading.Event()
    if args.busy_thread:
        threading.Thread(target=busy, args=(stop,), daemon=True).start()
    try:
        result = asyncio.run(main_async(args.answers, args.rooms, not args.skip_wake))
    finally:
        stop.set()
    result["busy_thread"] = args.busy_thread
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for r in result["rooms"]:
        print(
            f"room {r['delay_ms']} ms: echo {r['echo_db']} dB; upload held over the first "
            f"{r['answers_held']} answers; ERLE median {r['erle_median_db']} dB, "
            f"{r['answers_at_25db']}/{r['answers_uploaded']} uploaded answers >= 25 dB, "
            f"{r['answers_heard_as_speech']} heard as speech (without AEC: "
            f"{r['without_aec_heard_as_speech']}); per answer {r['erle_db']}"
        )
        w = r["without_lock"]
        print(
            f"  without the echo lock (same room, same run): held over {w['answers_held']}; "
            f"ERLE median {w['erle_median_db']} dB, "
            f"{w['answers_at_25db']}/{w['answers_uploaded']} uploaded answers >= 25 dB, "
            f"{w['answers_heard_as_speech']} heard as speech; per answer {w['erle_db']}"
        )
    w = result["wake_over_answer"]
    if w is not None:
        print(
            f"'hey jarvis, stop' over an answer, {w['trials']} trials: detected "
            f"{w['half_duplex_detected']} in half duplex, {w['aec_detected']} in aec mode (the "
            f"same takes: cancelled signal alone {w['aec_cancelled_only_detected']}, uncancelled "
            f"alone {w['aec_uncancelled_only_detected']})"
        )
    c = result["cpu"]
    print(
        f"CPU per second of audio: AEC {c['aec_cpu_per_s'] * 1000:.1f} ms, wake word path "
        f"{c['wake_cpu_per_s'] * 1000:.1f} ms ({c['aec_over_wake']}x); AEC without its echo "
        f"lock {c['aec_without_lock_cpu_per_s'] * 1000:.1f} ms; the wake word path on "
        f"two lanes (aec, the speaker playing) {c['wake_two_lanes_cpu_per_s'] * 1000:.1f} ms "
        f"({c['two_lanes_over_one']}x one lane)"
    )


if __name__ == "__main__":
    main()
