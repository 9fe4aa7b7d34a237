"""A speaker-embedding check for enrolled-only mode, tried and not shipped (not a test):

    pip download --no-deps resemblyzer==0.1.4 -d /tmp/rz && unzip -q /tmp/rz/*.whl -d /tmp/rz
    uv run python -m tests.wakeword.try_speaker_encoder /tmp/rz/resemblyzer/pretrained.pt tune
    uv run python -m tests.wakeword.try_speaker_encoder /tmp/rz/resemblyzer/pretrained.pt held-out

Resemblyzer's GE2E encoder (3 LSTM layers of 256 over 40 mel bands, trained to tell speakers apart)
is read from its torch-format weights (the legacy `torch.save` format, without torch) and run in
numpy. Each voice of the split is enrolled from four takes (templates and voiceprints, as the
daemon does, and the mean of the takes' encoder embeddings). In enrolled-only mode each detection
of the templates-only path is then also judged by the cosine of the encoder's embedding of the
second before it to that mean. Printed, for each rule: the share of the voice's own renditions
kept and of other speakers' wake words let through (other voices of the same speaker left out:
`corpus.speaker`), 3 renditions of every voice in CI's 8 conditions. The README has the numbers.
"""

from __future__ import annotations

import collections
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.config import WakeAudience, WakewordConfig
from device.events import MIC_RATE
from device.wakeword import verifier
from tests.bench.bench_wakeword_accuracy import NOISY, evaluate_all
from tests.wakeword import corpus, evaluate

F32 = npt.NDArray[np.float32]
STORAGES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32}
N_FFT, HOP, BANDS, HIDDEN = 400, 160, 40, 256


class _Storage:
    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: npt.NDArray[Any] = np.zeros(0)


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: Any) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, tuple(stride)

    def array(self) -> npt.NDArray[Any]:
        a = self.storage.data[self.offset :]
        strides = tuple(s * a.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(a, self.size, strides).copy()


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGES:
            return STORAGES[name]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *_: _Tensor(storage, offset, size, stride)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module.startswith("torch"):  # the optimizer's classes: not needed
            return lambda *a, **k: None
        raise pickle.UnpicklingError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        _kind, dtype, key, _location, numel, _view = pid
        return self.storages.setdefault(key, _Storage(dtype, numel))


def load_weights(path: Path) -> dict[str, F32]:
    """The `model_state` of a legacy-format torch checkpoint, as numpy arrays."""
    with path.open("rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        u = _Unpickler(f)
        obj = u.load()
        for key in pickle.load(f):
            s = u.storages[key]
            n = int(np.frombuffer(f.read(8), "<i8")[0])
            s.data = np.frombuffer(f.read(n * np.dtype(s.dtype).itemsize), s.dtype)
    return {k: v.array().astype(np.float32) for k, v in obj["model_state"].items()}


def _mel_filters() -> F32:
    """librosa's default (Slaney) mel filterbank for 16 kHz, 400-point FFT, 40 bands."""

    def to_mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lin = f / (200.0 / 3)
        return np.where(
            f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (np.log(6.4) / 27), lin
        )

    def to_hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.where(m >= 15, 1000 * np.exp(np.log(6.4) / 27 * (m - 15)), m * 200.0 / 3)

    fft = np.linspace(0, MIC_RATE / 2, N_FFT // 2 + 1)
    hz = to_hz(np.linspace(0, to_mel(np.array(MIC_RATE / 2.0)), BANDS + 2))
    ramps = hz[:, None] - fft[None, :]
    gaps = np.diff(hz)
    w = np.maximum(0, np.minimum(-ramps[:-2] / gaps[:-1, None], ramps[2:] / gaps[1:, None]))
    return (w * (2.0 / (hz[2:] - hz[:-2]))[:, None]).astype(np.float32)


def _sigmoid(v: F32) -> F32:
    out: F32 = 0.5 * (1 + np.tanh(0.5 * v))
    return out


class Encoder:
    """Resemblyzer's voice encoder in numpy: power mel spectrogram -> 3 LSTMs -> linear -> ReLU."""

    def __init__(self, weights: Path) -> None:
        s = load_weights(weights)
        self.layers = [
            (s[f"lstm.weight_ih_l{i}"].T, s[f"lstm.weight_hh_l{i}"].T.copy(),
             s[f"lstm.bias_ih_l{i}"] + s[f"lstm.bias_hh_l{i}"])
            for i in range(3)
        ]  # fmt: skip
        self.out_w, self.out_b = s["linear.weight"].T, s["linear.bias"]
        self.filters = _mel_filters()
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)

    def embed(self, pcm: npt.NDArray[np.int16]) -> F32:
        """Unit embedding of 16 kHz audio (raised to -30 dBFS first, as Resemblyzer does)."""
        x = pcm.astype(np.float32) / 32767
        gain_db = -30 - 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-9)
        x = np.pad(x * 10 ** (max(gain_db, 0.0) / 20), N_FFT // 2)
        n = 1 + (len(x) - N_FFT) // HOP
        frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
        h = (np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2 @ self.filters.T).astype(
            np.float32
        )
        for w_in, w_rec, bias in self.layers:
            gates_in = h @ w_in + bias
            state, cell = np.zeros(HIDDEN, np.float32), np.zeros(HIDDEN, np.float32)
            out = np.empty((len(h), HIDDEN), np.float32)
            for t in range(len(h)):
                g = gates_in[t] + state @ w_rec
                i, f, c, o = (g[k * HIDDEN : (k + 1) * HIDDEN] for k in range(4))
                cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(c)
                state = _sigmoid(o) * np.tanh(cell)
                out[t] = state
            h = out
        e = np.maximum(0, state @ self.out_w + self.out_b)
        unit: F32 = (e / (np.linalg.norm(e) + 1e-9)).astype(np.float32)
        return unit


def _templates_alone(
    a: evaluate.Analysis, cfg: WakewordConfig, ver: verifier.VoiceVerifier
) -> list[int]:
    """Where the daemon path fires with the voiceprint check off (as tune_voiceprint turns it
    off: `PRINT_MATCH` infinite), the shipped distance put back afterwards."""
    shipped = verifier.PRINT_MATCH
    verifier.PRINT_MATCH = np.inf
    try:
        return [d[0] for d in evaluate.daemon_detections(a, cfg, [ver])]
    finally:
        verifier.PRINT_MATCH = shipped


def main() -> None:
    weights, split = Path(sys.argv[1]), sys.argv[2]
    enc = Encoder(weights)
    only = WakewordConfig(who_can_wake=WakeAudience.ENROLLED)
    results = evaluate_all([corpus.Spec(split, "pos", c, 3) for c in ("clean", *NOISY)])
    voices = corpus.HELD_OUT_VOICES if split == "held-out" else corpus.TUNE_VOICES
    rows: list[tuple[bool, str, bool, bool, float]] = []  # own?, condition, templates, prints, cos
    heard: dict[tuple[int, int], F32] = {}  # (stream, detection) -> embedding: once, not per voice
    for v in voices:
        takes = [corpus.say(v, corpus.WAKE, t, s) for t, s in evaluate.ENROLL_TAKES]
        mean = np.mean([enc.embed(t) for t in takes], axis=0)
        mean /= np.linalg.norm(mean)
        ver = evaluate.enroll_voice(v)
        for si, (spec, stream, a) in enumerate(results):
            plain = _templates_alone(a, only, ver)
            printed = [d[0] for d in evaluate.daemon_detections(a, only, [ver])]
            for clip in stream.clips:
                other = corpus.voice_of(clip.label)
                if other != v and corpus.speaker(other) == corpus.speaker(v):
                    continue
                lo, hi = clip.start, clip.end + evaluate.AFTER  # as evaluate counts a detection
                mine = [d for d in plain if lo <= d < hi]
                for d in mine:
                    if (si, d) not in heard:
                        heard[si, d] = enc.embed(stream.audio[d - MIC_RATE : d])
                cos = max((float(heard[si, d] @ mean) for d in mine), default=-1.0)
                kept = any(lo <= d < hi for d in printed)
                rows.append((other == v, spec.condition, bool(mine), kept, cos))
        print("enrolled", v, flush=True)

    def line(name: str, keep: Callable[[tuple[bool, str, bool, bool, float]], bool]) -> None:
        own = np.mean([keep(r) for r in rows if r[0]])
        others = np.mean([keep(r) for r in rows if not r[0]])
        print(f"{name:<34} own kept {own:4.0%}   other speakers let through {others:5.1%}")

    line("templates alone", lambda r: r[2])
    line("voiceprints (shipped)", lambda r: r[3])
    for th in (0.5, 0.55, 0.6, 0.65):
        line(f"encoder alone >= {th}", lambda r, th=th: r[2] and r[4] >= th)
        line(f"voiceprints and encoder >= {th}", lambda r, th=th: r[3] and r[4] >= th)


if __name__ == "__main__":
    main()
