"""Small signal tools for enrollment: noise, a synthetic room, mixing at an SNR (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from device.events import MIC_RATE

Float = npt.NDArray[np.float64]
Int16 = npt.NDArray[np.int16]


def unit_power(x: Float) -> Float:
    """`x` scaled to a mean power of 1."""
    out: Float = x / max(float(np.sqrt(np.mean(x**2))), 1e-12)
    return out


def colored(kind: str, n: int, rng: np.random.Generator) -> Float:
    """Unit-power 'white' or 'pink' (1/f power) noise."""
    w = rng.standard_normal(n)
    if kind == "pink":
        f = np.fft.rfftfreq(n)
        f[0] = f[1]
        w = np.fft.irfft(np.fft.rfft(w) / np.sqrt(f), n)
    elif kind != "white":
        raise ValueError(f"unknown noise {kind!r}")
    return unit_power(w)


def room_response(rt60_s: float, direct: float, rng: np.random.Generator) -> Float:
    """A synthetic room impulse response: the direct sound and an exponentially decaying tail."""
    n = int(rt60_s * MIC_RATE)
    t = np.arange(n) / MIC_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.003 * MIC_RATE)] = 0
    h: Float = tail / np.sqrt(np.sum(tail**2))
    h[0] = direct
    return h


def convolve(x: Float, h: Float) -> Float:
    """Linear convolution by FFT (length len(x) + len(h) - 1)."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    y: Float = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]
    return y


def active_power(x: Int16, floor: int = 100) -> float:
    """Mean power of the samples above `floor` (the speech, not the pauses)."""
    f = x.astype(np.float64)
    active = f[np.abs(f) > floor]
    return float(np.mean(active**2)) if len(active) else 1.0


def to_int16(x: Float) -> Int16:
    """Clip and convert."""
    return np.clip(x, -32768, 32767).astype(np.int16)


def variants(take: Int16, seed: int = 0) -> list[Int16]:
    """A take as enrollment learns it: as recorded, in noise (white, pink, and a babble of the
    take itself), and in a small and a larger room."""
    rng = np.random.default_rng(seed)
    f = take.astype(np.float64)
    level = np.sqrt(active_power(take))
    out = [take]
    for kind, snr_db in (("white", 20.0), ("pink", 12.0), ("white", 10.0), ("pink", 5.0)):
        out.append(to_int16(f + colored(kind, len(f), rng) * level * 10 ** (-snr_db / 20)))
    chatter = np.sum([np.roll(f[::-1], int(rng.integers(len(f)))) for _ in range(4)], axis=0)
    out.append(to_int16(f + unit_power(chatter) * level * 10 ** (-10 / 20)))
    for rt60 in (0.3, 0.6):
        out.append(to_int16(convolve(f, room_response(rt60, 1.0, rng))[: len(f) + MIC_RATE // 4]))
    return out
