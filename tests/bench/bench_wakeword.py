"""Wake-word CPU benchmark (not a test): `uv run python -m tests.bench.bench_wakeword [--trials N]`.

CPU seconds per second of audio, over the same audio in the same run, for:
- daemon: the daemon's wake-word path at its default settings (`Detector.process` on 20 ms
  AudioBlocks: framing, openWakeWord features, classifier, second stage, microWakeWord's model,
  FrameTrigger);
- daemon-no-mww: the same without microWakeWord's model (`micro_wake_word = false`);
- daemon-no-2nd: the same without the second stage (`second_stage = false`);
- daemon+voice: the same with one enrolled voice (its verifier runs on frames scoring >= GATE);
- bare: a plain `openwakeword.Model.predict` loop on 80 ms frames (same TFLite files and runtime);
- pyopen-wakeword: that wheel's own engine (TFLite C library through ctypes);
- pymicro-wakeword: microWakeWord's hey_jarvis on that wheel's own engine (likewise).
Trials are interleaved and the minimum per engine is reported (the machine is shared). The audio is
the evaluation set's speech: wake words with questions and ordinary sentences, clean and noisy.
Writes bench-results/wakeword.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from device.config import WakewordConfig
from device.events import MIC_RATE, AudioBlock
from device.wakeword.detector import Detector
from device.wakeword.enroll import enroll
from device.wakeword.models import FRAME_SAMPLES, load_model
from device.wakeword.verifier import VoiceVerifier
from tests.wakeword import evalset
from tests.wakeword.bare import bare_model

Int16 = npt.NDArray[np.int16]


def bench_audio(seconds: float) -> Int16:
    """`seconds` of evaluation speech (positives then negatives, half of it with pink noise)."""
    pos = evalset.positives().audio
    neg = evalset.negatives().audio
    audio = np.concatenate([pos, neg])[: int(seconds * MIC_RATE)]
    noisy = evalset.with_noise(
        evalset.Stream(audio, (evalset.Clip("all", 0, None, len(audio)),)), "pink"
    )
    half = len(audio) // 2
    return np.concatenate([audio[:half], noisy.audio[half:]])


def a_voice() -> VoiceVerifier:
    """An enrolled voice: four takes of one espeak-ng voice."""
    takes = [evalset.say("hey jarvis", "en-gb", s, p) for s in (150, 175) for p in (40, 60)]
    return enroll("bench", takes, load_model("hey_jarvis"))


def run_daemon(
    audio: Int16,
    voices: list[VoiceVerifier] | None = None,
    second_stage: bool = True,
    micro: bool = True,
) -> Callable[[], int]:
    cfg = WakewordConfig(second_stage=second_stage, micro_wake_word=micro)
    detector = Detector(cfg, voices=voices or [])

    def go() -> int:
        detector.reset()
        hits = 0
        for i in range(0, len(audio), 320):
            hits += len(detector.process(AudioBlock(audio[i : i + 320].tobytes(), i)))
        return hits

    return go


def run_bare(audio: Int16) -> Callable[[], int]:
    model = bare_model()

    def go() -> int:
        model.reset()
        n = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        return sum(
            model.predict(f)["hey_jarvis"] >= 0.5 for f in audio[:n].reshape(-1, FRAME_SAMPLES)
        )

    return go


def run_pyopen(audio: Int16) -> Callable[[], int]:
    from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

    ww = OpenWakeWord.from_builtin(Model.HEY_JARVIS)
    feats = OpenWakeWordFeatures.from_builtin()
    pcm = audio.tobytes()

    def go() -> int:
        ww.reset()
        feats.reset()
        above = 0
        for i in range(0, len(pcm), 640):  # 20 ms chunks, as the microphone delivers them
            for f in feats.process_streaming(pcm[i : i + 640]):
                above += sum(p >= 0.5 for p in ww.process_streaming(f))
        return above

    return go


def run_pymicro(audio: Int16) -> Callable[[], int]:
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    ww = MicroWakeWord.from_builtin(Model.HEY_JARVIS)
    feats = MicroWakeWordFeatures()
    pcm = audio.tobytes()

    def go() -> int:
        ww.reset()
        feats.reset()
        heard = 0
        for i in range(0, len(pcm), 640):  # 20 ms chunks
            for f in feats.process_streaming(pcm[i : i + 640]):
                heard += bool(ww.process_streaming(f))
        return heard

    return go


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=120.0, help="audio per trial")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--out", default="bench-results/wakeword.json")
    args = p.parse_args()
    audio = bench_audio(args.seconds)
    secs = len(audio) / MIC_RATE
    engines = {
        "daemon": run_daemon(audio),
        "daemon-no-mww": run_daemon(audio, micro=False),
        "daemon-no-2nd": run_daemon(audio, second_stage=False),
        "daemon+voice": run_daemon(audio, [a_voice()]),
        "bare": run_bare(audio),
        "pyopen-wakeword": run_pyopen(audio),
        "pymicro-wakeword": run_pymicro(audio),
    }
    cpu: dict[str, list[float]] = {k: [] for k in engines}
    frames_above: dict[str, int] = {}
    for _ in range(args.trials):
        for name, go in engines.items():
            t0 = time.process_time()
            frames_above[name] = int(go())
            cpu[name].append((time.process_time() - t0) / secs)
    best = {k: min(v) for k, v in cpu.items()}
    print(f"wake-word CPU over {secs:.0f} s of speech, best of {args.trials} (interleaved):")
    print(f"{'engine':<18}{'CPU s per s audio':>20}{'x bare':>9}{'detections/frames>=0.5':>24}")
    for name in engines:
        print(
            f"{name:<18}{best[name]:>20.4f}{best[name] / best['bare']:>9.2f}{frames_above[name]:>24}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "audio_seconds": secs,
                "trials": args.trials,
                "machine": platform.machine(),
                "cpu_s_per_audio_s": best,
                "all_trials": cpu,
                "ratio_to_bare": {k: best[k] / best["bare"] for k in best},
                "note": "daemon counts detections; the others count frames scoring >= 0.5 (pymicro-wakeword: steps above its cutoff)",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
