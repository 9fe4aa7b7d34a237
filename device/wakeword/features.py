"""openWakeWord's feature pipeline on ai-edge-litert, without importing the openwakeword package.

`import openwakeword` pulls in scikit-learn, scipy, onnxruntime, requests and tqdm (about 160 MiB of
RSS and seconds of start-up on a Pi), none of which scoring needs. This is the streaming part of
openWakeWord 0.6's `AudioFeatures` for 80 ms frames, on the same two TFLite models
(melspectrogram + Google's speech embedding) shipped in the pyopen-wakeword wheel:

- per frame, the mel spectrogram of the frame and the 480 samples before it (8 new rows of 32
  bands, transformed `x / 10 + 2` as openWakeWord does);
- one 96-value embedding of the newest 76 mel rows per frame;
- the newest 240 mel rows (2.4 s) stay readable (`mels`): enrolled voices' prints read them;
- the classifier reads the newest `n` embeddings (16 for the built-in models).

A test checks that the scores equal openWakeWord's `Model.predict` frame for frame.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FRAME_SAMPLES = 1280
"""openWakeWord scores 80 ms frames of 16 kHz audio."""
CONTEXT_SAMPLES = 480
"""Samples before a frame that its mel rows also see (3 hops of 160)."""
MEL_WINDOW = 76
"""Mel rows per embedding."""
MEL_BANDS = 32
EMBEDDING_SIZE = 96
HISTORY = 32
"""Embeddings kept (2.56 s): more than any classifier or verifier window reads."""
MEL_HISTORY = 240
"""Mel rows kept (2.4 s): the wake word and the noise before it, for enrolled voices' prints."""

Float32 = npt.NDArray[np.float32]
Int16 = npt.NDArray[np.int16]
RowsFilter = Callable[[Float32], Float32]


def _interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=1)


class _Nets:
    """The two TFLite interpreters. They keep no audio between invocations (each call sets its
    whole input), so streams scored on one thread can share them (`Features.twin`)."""

    def __init__(self, models: Path) -> None:
        self.mel: Any = _interpreter(models / "melspectrogram.tflite")
        self.mel_len = 0
        """Samples the mel interpreter's input is sized for (a stream's first frame has fewer)."""
        self.emb: Any = _interpreter(models / "embedding_model.tflite")
        self.emb.allocate_tensors()
        self.emb_in = self.emb.get_input_details()[0]["index"]
        self.emb_out = self.emb.get_output_details()[0]["index"]
        self.noise = noise_embeddings(models)

    def mel_rows(self, samples: Float32) -> Float32:
        if len(samples) != self.mel_len:
            _resize(self.mel, [1, len(samples)])
            self.mel_len = len(samples)
        return _mel_rows(self.mel, samples)

    def embed(self, windows: Float32) -> Float32:
        emb = self.emb
        emb.set_tensor(self.emb_in, windows)
        emb.invoke()
        out: Float32 = emb.get_tensor(self.emb_out).reshape(-1, EMBEDDING_SIZE).copy()
        return out


class Features:
    """Streaming mel spectrogram + speech embeddings, one 80 ms frame at a time."""

    def __init__(
        self, models: Path, rows_filter: RowsFilter | None = None, *, nets: _Nets | None = None
    ) -> None:
        self._nets = nets if nets is not None else _Nets(models)
        self._models = models
        self._filter = rows_filter
        self._raw = np.zeros(FRAME_SAMPLES + CONTEXT_SAMPLES, np.float32)
        self._mels = np.ones((MEL_HISTORY, MEL_BANDS), np.float32)
        self._embeddings = np.zeros((HISTORY, EMBEDDING_SIZE), np.float32)
        self._frames = 0
        self.reset()

    def reset(self) -> None:
        """Forget all audio (the embedding history restarts from a fixed burst of noise, like
        openWakeWord's, so the first frames score near zero rather than on stale speech)."""
        self._raw[:] = 0
        self._mels[:] = 1.0
        self._frames = 0
        self._embeddings[:] = self._nets.noise[-HISTORY:]

    def twin(self, rows_filter: RowsFilter | None = None) -> Features:
        """Another stream on the same interpreters (its own audio history: 50 KB, not the
        interpreters' MBs); it must be pushed on the thread this one is."""
        return Features(self._models, rows_filter, nets=self._nets)

    def follow(self, other: Features) -> None:
        """Take on `other`'s audio history, as if this stream had heard what it heard."""
        self._raw[:] = other._raw
        self._mels[:] = other._mels
        self._embeddings[:] = other._embeddings
        self._frames = other._frames

    @property
    def embeddings(self) -> Float32:
        """The newest embeddings, oldest first (HISTORY x 96; a view, copy to keep)."""
        return self._embeddings

    @property
    def mels(self) -> Float32:
        """The newest mel rows, oldest first (MEL_HISTORY x 32; a view, copy to keep)."""
        return self._mels

    def window(self, n: int) -> Float32:
        """The newest `n` embeddings as the classifier's input (1 x n x 96)."""
        return self._embeddings[-n:][None]

    def push(self, frame: Int16) -> None:
        """Add one 80 ms frame (FRAME_SAMPLES int16 samples)."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected {FRAME_SAMPLES} samples, got {frame.shape}")
        self._raw[:CONTEXT_SAMPLES] = self._raw[FRAME_SAMPLES:]
        self._raw[CONTEXT_SAMPLES:] = frame
        # openWakeWord's first frame sees only its own 1280 samples (no context yet).
        samples = self._raw if self._frames else self._raw[CONTEXT_SAMPLES:]
        rows = self._nets.mel_rows(samples)
        if self._filter is not None:
            rows = self._filter(rows)
        self._frames += 1
        n = len(rows)
        self._mels[:-n] = self._mels[n:]
        self._mels[-n:] = rows
        self._embeddings[:-1] = self._embeddings[1:]
        self._embeddings[-1] = self._nets.embed(self._mels[None, -MEL_WINDOW:, :, None])[0]


def _resize(interpreter: Any, shape: list[int]) -> None:
    interpreter.resize_tensor_input(0, shape, strict=True)
    interpreter.allocate_tensors()


def _mel_rows(mel: Any, samples: Float32) -> Float32:
    mel.set_tensor(mel.get_input_details()[0]["index"], samples[None])
    mel.invoke()
    out = mel.get_tensor(mel.get_output_details()[0]["index"])
    rows: Float32 = np.squeeze(out).astype(np.float32) / 10 + 2
    return np.atleast_2d(rows)


@cache
def noise_embeddings(models: Path) -> Float32:
    """The embeddings of openWakeWord's start-up noise (4 s, fixed seed), computed once per process
    on throwaway interpreters: their 4-second tensor arenas (tens of MiB) are freed with them
    instead of staying allocated in the detector's interpreters for its whole life."""
    noise = np.random.default_rng(0).integers(-1000, 1000, 4 * 16000).astype(np.int16)
    mel = _interpreter(models / "melspectrogram.tflite")
    _resize(mel, [1, len(noise)])
    rows = _mel_rows(mel, noise.astype(np.float32))
    starts = range(0, len(rows) - MEL_WINDOW + 1, 8)
    batch = np.stack([rows[i : i + MEL_WINDOW] for i in starts])[..., None].astype(np.float32)
    emb = _interpreter(models / "embedding_model.tflite")
    _resize(emb, [len(batch), MEL_WINDOW, MEL_BANDS, 1])
    emb.set_tensor(emb.get_input_details()[0]["index"], batch)
    emb.invoke()
    out: Float32 = emb.get_tensor(emb.get_output_details()[0]["index"]).reshape(-1, EMBEDDING_SIZE)
    out = out.copy()
    out.flags.writeable = False
    return out
