"""Shared fixtures: the test rig (virtual sound card, synthetic speech, throwaway TLS CA)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from device.config import Config
from device.logsetup import HANDLER_NAME
from device.simhw.pulse import VirtualSoundCard, write_wav
from device.simhw.speech import synthesize
from device.simulator.certs import CertFiles, ensure_certs
from device.simulator.server import LiveSimulator

# Tests never talk to Vertex or through a proxy.
for _var in (
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "CREDENTIALS_DIRECTORY",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost,::1"
os.environ["GPIOZERO_PIN_FACTORY"] = "mock"

CACHE = Path(os.environ.get("LIVESPEAKER_TEST_CACHE", Path.home() / ".cache" / "livespeaker-tests"))


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """A command run in-process (main()) sets up logging to the stderr of its moment, which the
    test's capture closes afterwards: take that handler off again (and the root level back)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def sound_card() -> Iterator[VirtualSoundCard]:
    """A private PulseAudio server: default sink `speaker`, default source `mic` (fed by `micfeed`)."""
    with VirtualSoundCard() as card:
        yield card


@pytest.fixture(scope="module")
def room_card(sound_card: VirtualSoundCard) -> Iterator[VirtualSoundCard]:
    """A sound card whose microphone runs at 44.1 kHz (the speaker's sink at 48 kHz: two clocks),
    for the echo tests' rooms. It stands in for the session's card meanwhile; PortAudio is
    pointed back at that one afterwards."""
    import sounddevice as sd

    with VirtualSoundCard(mic_rate=44100) as card:
        sd._terminate()
        sd._initialize()
        yield card
    sd._terminate()
    sd._initialize()


SpeechFactory = Callable[..., npt.NDArray[np.int16]]


@pytest.fixture(scope="session")
def speech() -> SpeechFactory:
    """speech(text, rate=16000, voice=..., speed=..., pitch=...) -> int16 samples (cached on disk)."""

    def make(text: str, rate: int = 16000, **kw: object) -> npt.NDArray[np.int16]:
        key = hashlib.sha256(repr((text, rate, sorted(kw.items()))).encode()).hexdigest()[:20]
        path = CACHE / "speech" / f"{key}.npy"
        if path.exists():
            return np.load(path)  # type: ignore[no-any-return]
        samples = synthesize(text, rate, **kw)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, samples)
        return samples

    return make


@pytest.fixture(scope="session")
def speech_wav(
    speech: SpeechFactory, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """speech_wav(text, rate=16000, ...) -> path of a mono 16-bit WAV."""
    d = tmp_path_factory.mktemp("speech")

    def make(text: str, rate: int = 16000, **kw: object) -> Path:
        samples = speech(text, rate, **kw)
        path = d / f"{hashlib.sha256(repr((text, rate, kw)).encode()).hexdigest()[:16]}.wav"
        write_wav(path, samples, rate)
        return path

    return make


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A throwaway CA and a certificate for 127.0.0.1/localhost."""
    return ensure_certs(tmp_path_factory.mktemp("tls"))


# --- Live API simulator (device/simulator) -------------------------------------------------------

SIM_API_KEY = "sim-test-key"
"""The API key the `simulator` fixture accepts (pass it as ApiKey(SIM_API_KEY, "test"))."""


@contextlib.asynccontextmanager
async def running_simulator(
    certs: CertFiles, *, realtime_factor: float, hold_turn_complete: bool, answer_rate: int = 24000
) -> AsyncIterator[LiveSimulator]:
    """A Live API simulator on 127.0.0.1 (TLS) accepting SIM_API_KEY, stopped afterwards."""
    sim = LiveSimulator(
        certs,
        api_keys=[SIM_API_KEY],
        realtime_factor=realtime_factor,
        hold_turn_complete=hold_turn_complete,
        answer_rate=answer_rate,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def simulator(tls_certs: CertFiles) -> AsyncIterator[LiveSimulator]:
    """A running Live API simulator on 127.0.0.1 (TLS), fast replies, accepting SIM_API_KEY."""
    async with running_simulator(tls_certs, realtime_factor=20.0, hold_turn_complete=False) as sim:
        yield sim


def sim_config(sim: LiveSimulator, tmp: Path, **live: object) -> Config:
    """A Config pointing live.base_url/ca_file at the simulator, state_dir in tmp."""
    return Config.model_validate(
        {
            "state_dir": str(tmp / "state"),
            "live": {"base_url": sim.base_url, "ca_file": str(sim.certs.ca), **live},
        }
    )


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Two lanes for `pytest -n 2` (dev.sh test): the system tier (containers, SSH, debootstrap
    and qemu, mostly waiting on them) in one worker, everything else in the other, each lane in
    collection order and one test at a time, as without xdist. (xdist's own `loadgroup` marks do
    not group on pytest 9.2, which no longer reads the node id xdist rewrites.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "system" if nodeid.startswith("tests/system/") else "main"

    return Lanes(config, log)


LAST_MODULES = (
    "tests/home/test_three_speakers_e2e.py::",
    "tests/audio/test_aec.py::",
    "tests/app/test_aec_e2e.py::",
)
"""Tests run last in their lane, after the system lane (about 15 of a 28 min run) has finished:
- the echo rooms: the rig's room (device.simhw.room) is a chain of processes between the
  speaker's sink and the microphone, scheduled like any other. With two CPU-bound processes
  beside it, test_aec_e2e at 20 trials heard an answer's echo as the user in 3 of 4 runs (the
  4th lost a spoken request), with the old timeline code and the new alike (Dec 8 2026); CI
  failed once so, at 2 trials, while the system lane built its root filesystems;
- three speakers' daemons on this one machine's two CPUs: beside the system lane's emulated
  arm64 provisioning, the loudest speaker stood back and a quieter one answered, in 1 of 3
  trials, once in CI (Dec 8 2026); speakers in a home each have their own CPU."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.startswith(LAST_MODULES))  # stable: the rest in order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the container root filesystems the selected system tests will boot, on a
    background thread, while the unit and integration tests run: debootstrap is ~1.5 min per
    native suite and ~6 min for arm64 under qemu, and the system tests come last. The tests'
    own ensure_rootfs() waits on the same file lock, so nothing is built twice; a build that
    fails here is only logged (the test that needs it builds it again and fails with the cause).
    """
    wanted: list[tuple[str, str | None]] = []
    for item in session.items:
        if "tests/system/" not in item.nodeid:
            continue
        names = getattr(item, "fixturenames", ())
        need = ("bookworm", None)
        if "pi_trixie" in names or "trixie" in item.nodeid:
            need = ("trixie", None)
        elif "pi_arm64" in names:
            need = ("bookworm", "arm64")
        if need not in wanted:
            wanted.append(need)
    if not wanted or os.geteuid() != 0:
        return
    # Native suites first (the first system tests boot them), the emulated one last.
    wanted.sort(key=lambda w: w[1] is not None)

    def build() -> None:
        from tests.system.container import ensure_rootfs

        for suite, arch in wanted:
            try:
                ensure_rootfs(suite, arch=arch)
            except Exception as exc:
                logging.getLogger(__name__).warning(
                    "background rootfs build %s/%s failed: %s", suite, arch or "native", exc
                )

    import threading

    threading.Thread(target=build, name="rootfs-prebuild", daemon=True).start()
