"""Mixed soak of one `livespeaker run` process: spoken conversations interleaved with faults.

`uv run --locked python -m tests.bench.bench_mixed_soak [--minutes 30]` (or `python -m tests.bench
--only mixed_soak --minutes 30`). Writes bench-results/mixed_soak.json.

One daemon process (its own NOTIFY_SOCKET; its state followed through STATUS=/READY=/RELOADING=),
the private PulseAudio card, the Live API simulator on a thread of this process (so faults are armed
between conversations). Rounds follow a fixed rotation of fault kinds (KINDS) until the time is up;
each round causes its fault, notes what the user saw (the status lines), then speaks wake-word
conversations and checks the NEXT one after the fault is served (answered, then idle again).
RSS and open fds of the daemon are sampled after every round, with the daemon idle.

recovery_s, per kind (RECOVERY_FROM): from the moment the fault took effect until the daemon was
ready for a wake-up again. Windows (bad key, quota) are lifted after one wake-up in them; the next
wake-up waits out the daemon's designed hold ([live] retry_max_s / quota_backoff_s, 2 s here).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.app.states import STATUS_LINES, State
from device.events import MIC_RATE
from device.simhw.pulse import VirtualSoundCard
from device.simhw.speech import synthesize
from device.simulator.certs import ensure_certs
from device.simulator.faults import Fault, FaultAction, When
from device.simulator.server import LiveSimulator, SimulatorThread
from tests.bench.bench_daemon import KEY, _notify_socket, open_fds, rss_mib

IDLE = STATUS_LINES[State.IDLE].format(wake="hey jarvis")
HOLD_S = 2.0
"""[live] retry_max_s and quota_backoff_s: how long a rejected key or quota is remembered."""
KINDS = (
    "none", "go_away", "drop", "stall", "bad_key", "quota",
    "reload", "reload_refused", "card_restart", "state_full",
)  # fmt: skip
RECOVERY_FROM = {
    "none": "-",
    "go_away": "answer started -> idle again (answered across the goAway)",
    "drop": "answer started -> idle again after the error",
    "stall": "answer started -> idle again after the error",
    "bad_key": "wake-up in the window -> idle again after the error",
    "quota": "wake-up in the window -> idle again after the error",
    "reload": "SIGHUP -> READY=1",
    "reload_refused": "SIGHUP -> the refusal in STATUS=",
    "card_restart": "card back -> the daemon's microphone stream reopened, idle",
    "state_full": "wake-up on the full state_dir -> idle again",
}
EXPECTED = {
    "drop": "Error: no network",
    "stall": "Error: no network",
    "bad_key": "Error: API key rejected",
    "quota": "Error: quota exhausted",
    "reload_refused": "config reload refused",
    "card_restart": "Error: audio device missing or busy",
    "state_full": "warning: cannot write to",
}
"""A status line (substring) that shows the fault really happened."""


def base(status: str) -> str:
    """The appliance's line without the notes (a refused reload, a state_dir warning)."""
    return status.partition(" (")[0]


def shown(status: str) -> str:
    """The line without a refused reload's note (it stays until a reload succeeds)."""
    head, sep, rest = status.partition(" (config reload refused: ")
    if not sep:
        return status
    _, sep, warning = rest.partition("; warning: ")
    return f"{head} (warning: {warning}" if sep else head


class Notify:
    """Every sd_notify datagram the daemon sent, with the monotonic time it was read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.msgs: list[tuple[float, dict[str, str]]] = []

    def pump(self, seconds: float = 0.0) -> None:
        """Read what arrives for `seconds` (at least one short read)."""
        until = time.monotonic() + seconds
        while True:
            try:
                raw = self.sock.recv(65536).decode(errors="replace")
            except TimeoutError:
                raw = ""
            if raw:
                fields = dict(ln.partition("=")[::2] for ln in raw.split("\n") if "=" in ln)
                self.msgs.append((time.monotonic(), fields))
            if time.monotonic() >= until:
                return

    def statuses(self, since: int) -> list[tuple[float, str]]:
        return [(t, m["STATUS"]) for t, m in self.msgs[since:] if "STATUS" in m]

    def wait(self, pred: Callable[[int], float | None], since: int, limit: float) -> float | None:
        """Pump until pred(since) gives a time; None after `limit` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.pump(0.0)
            if (t := pred(since)) is not None:
                return t
        return None

    def status_at(self, since: int, match: Callable[[str], bool]) -> float | None:
        """When the first matching status line since `since` arrived."""
        return next((t for t, s in self.statuses(since) if match(s)), None)

    def field_at(self, since: int, name: str) -> float | None:
        """When the first message with this field (READY, RELOADING) since `since` arrived."""
        return next((t for t, m in self.msgs[since:] if name in m), None)


@dataclass
class Talk:
    """One spoken wake-up and what followed."""

    served: bool
    saw: list[str]
    listening_s: float | None
    """Question audio started -> Listening (the session open)."""


@dataclass
class Round:
    """One round: its fault, what it did, the wake-ups after it, the daemon's footprint."""

    index: int
    kind: str
    at_s: float
    saw: str = ""
    """Status lines during the fault, in order (repeats folded)."""
    took_effect: bool = True
    recovery_s: float | None = None
    next_served: bool = False
    next_listening_s: float | None = None
    next_saw: str = ""
    served: int = 0
    conversations: int = 0
    rss_mib: float = 0.0
    open_fds: int = 0


def fold(lines: list[str]) -> str:
    """Status lines in order, repeats folded: "Connecting > Listening > ..."."""
    out: list[str] = []
    for s in lines:
        if not out or out[-1] != s:
            out.append(s)
    return " > ".join(out)


class Soak:
    """The daemon, the card, the simulator and the means to hurt them."""

    def __init__(
        self, card: VirtualSoundCard, tmp: Path, sim_thread: SimulatorThread, sim: LiveSimulator
    ) -> None:
        self.card, self.tmp, self.thread, self.sim = card, tmp, sim_thread, sim
        self.question = synthesize("Hey Jarvis, what is the capital of France?", MIC_RATE)
        self.state_dir = tmp / "state"
        self.config = tmp / "config.toml"
        self.follow_up_s = 1.0
        self.good = self._config_text()
        self.config.write_text(self.good)
        self.card_down = False
        self.daemon: subprocess.Popen[bytes] | None = None
        self.notify = Notify(_notify_socket(tmp / "notify"))

    def _config_text(self, extra: str = "") -> str:
        return (
            f'state_dir = "{self.state_dir}"\n[live]\nbase_url = "{self.sim.base_url}"\n'
            f'ca_file = "{self.sim.certs.ca}"\nretry_max_s = {HOLD_S}\n'
            f"quota_backoff_s = {HOLD_S}\n"
            f'[gpio]\npin_factory = "mock"\n[conversation]\nfollow_up_s = {self.follow_up_s}\n'
            f"no_speech_timeout_s = 4.0\n{extra}"
        )

    def start(self, log: Any) -> None:
        env = {**self.card.env, "GEMINI_API_KEY": KEY, "PYTHONPATH": str(Path.cwd())}
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "device", "--config", str(self.config), "run"],
            env={**env, "NOTIFY_SOCKET": str(self.tmp / "notify")},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        if self.notify.wait(lambda s: self.notify.field_at(s, "READY"), 0, 120) is None:
            raise RuntimeError("no READY=1 from the daemon")

    @property
    def pid(self) -> int:
        assert self.daemon is not None
        return self.daemon.pid

    def sample(self) -> tuple[float, int]:
        self.notify.pump(1.0)  # idle a moment: closing connections are gone
        return rss_mib(self.pid), open_fds(self.pid)

    # --- conversations ---------------------------------------------------------------------

    def talk(self, limit: float = 60.0) -> Talk:
        """Speak the question; served when answered and back to idle without an error."""
        mark = len(self.notify.msgs)
        lead = np.zeros(int(0.7 * MIC_RATE), np.int16)
        t0 = time.monotonic()
        player = self.card.feed_mic(np.concatenate([lead, self.question]), MIC_RATE)
        try:
            done = self.notify.wait(self._idle_after_change, mark, limit)
        finally:
            player.wait(30)
        saw = [base(s) for _, s in self.notify.statuses(mark)]
        listening = self.notify.status_at(mark, lambda s: base(s) == "Listening")
        served = (
            done is not None and "Answering" in saw and not any(s.startswith("Error") for s in saw)
        )
        return Talk(served, saw, None if listening is None else listening - t0)

    def _idle_after_change(self, mark: int) -> float | None:
        st = self.notify.statuses(mark)
        if st and base(st[-1][1]) == IDLE and any(base(s) != IDLE for _, s in st):
            return st[-1][0]
        return None

    def arm(self, fault: Fault) -> Fault:
        return self.thread.call(self.sim.inject, fault)

    def sim_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.thread.call(fn, *args)

    # --- faults: each returns (what the user saw, recovery seconds, took effect) --------------

    def fault(self, kind: str) -> tuple[str, float | None, bool]:
        return getattr(self, f"_f_{kind}")()  # type: ignore[no-any-return]

    def _f_none(self) -> tuple[str, float | None, bool]:
        return "", None, True

    def _mid_answer(self, action: FaultAction) -> tuple[str, float | None, bool]:
        n = len(self.sim.connections)
        fault = self.arm(Fault(action, When.MID_REPLY, after_chunks=3))
        mark = len(self.notify.msgs)
        talk = self.talk()
        answering = self.notify.status_at(mark, lambda s: base(s) == "Answering")
        idle = self._idle_after_change(mark)
        fired = fault.times == 0 and len(self.sim.connections) > n
        if action is FaultAction.GO_AWAY:
            fired = fired and talk.served and "goAway" in self.sim.connections[n].sent
        rec = idle - answering if answering is not None and idle is not None else None
        return fold(talk.saw), rec, fired

    def _f_go_away(self) -> tuple[str, float | None, bool]:
        return self._mid_answer(FaultAction.GO_AWAY)

    def _f_drop(self) -> tuple[str, float | None, bool]:
        return self._mid_answer(FaultAction.DROP)

    def _f_stall(self) -> tuple[str, float | None, bool]:
        return self._mid_answer(FaultAction.STALL)

    def _window(self, open_: Callable[[], None], close: Callable[[], None]) -> tuple[str, float | None, bool]:  # fmt: skip
        open_()
        try:
            mark = len(self.notify.msgs)
            talk = self.talk()
            err = self.notify.status_at(mark, lambda s: base(s).startswith("Error"))
            idle = self.notify.wait(self._idle_after_change, mark, 30)
        finally:
            close()
        time.sleep(HOLD_S + 0.5)  # the daemon remembers the failure this long, by design
        rec = idle - err if err is not None and idle is not None else None
        return fold(talk.saw), rec, True

    def _f_bad_key(self) -> tuple[str, float | None, bool]:
        keys = self.sim.api_keys
        assert keys is not None
        return self._window(lambda: self.sim_call(keys.discard, KEY), lambda: self.sim_call(keys.add, KEY))  # fmt: skip

    def _f_quota(self) -> tuple[str, float | None, bool]:
        fault = Fault(FaultAction.CLOSE_QUOTA, When.SETUP, times=1 << 30)

        def lift() -> None:
            fault.times = 0

        def open_() -> None:
            self.arm(fault)

        return self._window(open_, lambda: self.sim_call(lift))

    def _sighup(self, text: str, done: Callable[[int], float | None]) -> tuple[int, float | None]:
        self.config.write_text(text)
        mark = len(self.notify.msgs)
        t0 = time.monotonic()
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGHUP)
        t = self.notify.wait(done, mark, 120)
        return mark, None if t is None else t - t0

    def _f_reload(self) -> tuple[str, float | None, bool]:
        self.follow_up_s = 1.5 if self.follow_up_s == 1.0 else 1.0
        self.good = self._config_text()

        def ready(mark: int) -> float | None:
            if self.notify.field_at(mark, "RELOADING") is None:
                return None
            return self.notify.field_at(mark, "READY")

        mark, rec = self._sighup(self.good, ready)
        return fold([shown(s) for _, s in self.notify.statuses(mark)]), rec, rec is not None

    def _f_reload_refused(self) -> tuple[str, float | None, bool]:
        """A config that validates but cannot be built: an audio device that matches nothing."""
        bad = self._config_text('[audio]\noutput_device = "NoSuchSpeaker"\n')

        def refused(mark: int) -> float | None:
            return self.notify.status_at(mark, lambda s: "config reload refused" in s)

        mark, rec = self._sighup(bad, refused)
        self.config.write_text(self.good)  # the file is put right; no SIGHUP: the note stays
        torn_down = self.notify.field_at(mark, "RELOADING") is not None
        saw = [s for _, s in self.notify.statuses(mark)]
        ok = rec is not None and not torn_down and self.daemon_alive()
        return fold(saw), rec, ok and "NoSuchSpeaker" in fold(saw)

    def daemon_alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def _f_card_restart(self) -> tuple[str, float | None, bool]:
        mark = len(self.notify.msgs)
        self.card_down = True
        self.card.stop()
        self.notify.pump(3.0)  # the card is gone for a while
        self.card.start()
        self.card_down = False
        t0 = time.monotonic()

        def back(since: int) -> float | None:
            st = self.notify.statuses(since)
            if not st or base(st[-1][1]) != IDLE or not self._recording():
                return None
            return time.monotonic()

        t = self.notify.wait(back, mark, 60)
        saw = [base(s) for _, s in self.notify.statuses(mark)]
        self.notify.pump(2.5)  # the reopened stream settles before the next wake-up
        return fold(saw), None if t is None else t - t0, True

    def _recording(self) -> bool:
        """The daemon's microphone stream is open on the card (a source output)."""
        out = subprocess.run(
            ["pactl", "list", "short", "source-outputs"],
            env=self.card.env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.returncode == 0 and bool(out.stdout.strip())

    def _f_state_full(self) -> tuple[str, float | None, bool]:
        filler = self.state_dir / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
        try:
            mark = len(self.notify.msgs)
            talk = self.talk()
            idle = self.notify.wait(self._idle_after_change, mark, 30)
            start = self.notify.status_at(mark, lambda s: base(s) != IDLE)
            self.notify.pump(1.0)  # the handle is written as the conversation ends
            rec = idle - start if idle is not None and start is not None else None
            saw = fold([shown(s) for _, s in self.notify.statuses(mark)])
        finally:
            filler.unlink(missing_ok=True)
        return saw, rec, talk.served


@contextmanager
def tmpfs(d: Path, size: str = "1m") -> Iterator[bool]:
    """A small tmpfs on d (root only), so a full state_dir is cheap to make; False if unmountable."""
    d.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(d)],
                        capture_output=True).returncode == 0  # fmt: skip
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(d)], check=False)


def slope_per_hour(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs (seconds), per hour."""
    if len(xs) < 3 or max(xs) - min(xs) <= 0:
        return None
    return float(np.polyfit(np.array(xs), np.array(ys, dtype=float), 1)[0] * 3600)


def summarise(rounds: list[Round], warmup: int) -> dict[str, Any]:
    """Per kind: rounds, next wake-ups served, recovery median/max; memory and fds."""
    per_kind: dict[str, Any] = {}
    for kind in dict.fromkeys(r.kind for r in rounds):
        rs = [r for r in rounds if r.kind == kind]
        rec = [r.recovery_s for r in rs if r.recovery_s is not None]
        per_kind[kind] = {
            "rounds": len(rs),
            "took_effect": sum(r.took_effect for r in rs),
            "next_served": sum(r.next_served for r in rs),
            "recovery_from": RECOVERY_FROM[kind],
            "recovery_median_s": round(statistics.median(rec), 2) if rec else None,
            "recovery_max_s": round(max(rec), 2) if rec else None,
            "saw": rs[0].saw,
        }
    steady = rounds[warmup:] if len(rounds) > warmup + 1 else rounds
    xs = [r.at_s for r in steady]
    return {
        "per_kind": per_kind,
        "next_served": sum(r.next_served for r in rounds),
        "next_total": len(rounds),
        "conversations": sum(r.conversations for r in rounds),
        "conversations_served": sum(r.served for r in rounds),
        "not_served": [f"#{r.index} {r.kind}: {r.next_saw}" for r in rounds if not r.next_served],
        "no_effect": [f"#{r.index} {r.kind}: {r.saw}" for r in rounds if not r.took_effect],
        "rss_mib": {
            "first": steady[0].rss_mib,
            "last": steady[-1].rss_mib,
            "slope_per_hour": slope_per_hour(xs, [r.rss_mib for r in steady]),
        },
        "open_fds": {
            "first": steady[0].open_fds,
            "last": steady[-1].open_fds,
            "max": max(r.open_fds for r in steady),
            "slope_per_hour": slope_per_hour(xs, [r.open_fds for r in steady]),
        },
        "warmup_rounds": warmup,
    }


def mixed_soak(
    card: VirtualSoundCard,
    tmp: Path,
    *,
    minutes: float | None,
    kinds: tuple[str, ...] = KINDS,
    conversations: int = 1,
    warmup: int = 2,
) -> dict[str, Any]:
    """Rounds of kinds (in rotation until `minutes` are up; None: each kind once)."""
    certs = ensure_certs(tmp / "certs")
    sim_thread = SimulatorThread(certs, api_keys=[KEY])
    rounds: list[Round] = []
    with sim_thread as sim, tmpfs(tmp / "state") as mounted, (tmp / "daemon.log").open("w") as log:
        from tests.bench.bench_conversations import teach

        soak = Soak(card, tmp, sim_thread, sim)
        sim_thread.call(teach, sim, "what is the capital of France", soak.question)
        if not mounted:
            kinds = tuple(k for k in kinds if k != "state_full")
        soak.start(log)
        soak.notify.pump(2.0)
        t0 = time.monotonic()
        try:
            while (
                len(rounds) < len(kinds)
                if minutes is None
                else time.monotonic() - t0 < minutes * 60
            ):
                rounds.append(play_round(soak, len(rounds), kinds, conversations, t0))
        finally:
            if soak.card_down:
                card.start()
            assert soak.daemon is not None
            soak.daemon.send_signal(signal.SIGTERM)
            code = soak.daemon.wait(30)
            soak.notify.sock.close()
    text = (tmp / "daemon.log").read_text(errors="replace")
    return {
        "process": "livespeaker run (one process, all rounds)",
        "minutes": round((time.monotonic() - t0) / 60, 1),
        "kinds": list(kinds),
        **summarise(rounds, warmup),
        "exit_status": code,
        "tracebacks_in_log": text.count("Traceback"),
        "rounds": [asdict(r) for r in rounds],
    }


def play_round(soak: Soak, i: int, kinds: tuple[str, ...], conversations: int, t0: float) -> Round:
    """One fault, then `conversations` spoken wake-ups; the first is the one that must be served."""
    r = Round(i, kinds[i % len(kinds)], round(time.monotonic() - t0, 1))
    r.saw, rec, r.took_effect = soak.fault(r.kind)
    r.recovery_s = None if rec is None else round(rec, 2)
    if r.kind in EXPECTED:
        r.took_effect = r.took_effect and EXPECTED[r.kind] in r.saw
    for n in range(conversations):
        talk = soak.talk()
        r.conversations += 1
        r.served += talk.served
        if n == 0:
            r.next_served, r.next_saw = talk.served, fold(talk.saw)
            r.next_listening_s = None if talk.listening_s is None else round(talk.listening_s, 2)
        if not talk.served:
            soak.notify.pump(3.0)
    r.rss_mib, r.open_fds = soak.sample()
    r.rss_mib = round(r.rss_mib, 1)
    print(f"round {i:3d} {r.kind:15s} {'ok ' if r.next_served else 'NOT SERVED'} "
          f"effect={'y' if r.took_effect else 'N'} recovery={r.recovery_s} "
          f"rss={r.rss_mib} fds={r.open_fds} saw: {r.saw[:120]}", flush=True)  # fmt: skip
    return r


def table(result: dict[str, Any]) -> str:
    """The per-kind table and the memory lines, for people."""
    lines = [f"{'kind':15s} {'rounds':>6s} {'effect':>6s} {'served':>7s} {'rec med':>8s} "
             f"{'rec max':>8s}  recovery measured"]  # fmt: skip
    for kind, k in result["per_kind"].items():
        med, mx = k["recovery_median_s"], k["recovery_max_s"]
        lines.append(
            f"{kind:15s} {k['rounds']:6d} {k['took_effect']:6d} "
            f"{k['next_served']:3d}/{k['rounds']:<3d} {'-' if med is None else f'{med:.2f}':>8s} "
            f"{'-' if mx is None else f'{mx:.2f}':>8s}  {k['recovery_from']}"
        )
    rss, fds = result["rss_mib"], result["open_fds"]
    lines += [
        f"next wake-up after a fault served: {result['next_served']}/{result['next_total']}; "
        f"conversations served {result['conversations_served']}/{result['conversations']}",
        f"RSS MiB first {rss['first']} last {rss['last']} slope {rss['slope_per_hour']} /h; "
        f"fds first {fds['first']} last {fds['last']} max {fds['max']} "
        f"slope {fds['slope_per_hour']} /h (after {result['warmup_rounds']} warm-up rounds)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0, help="0: each fault kind once")
    p.add_argument("--conversations", type=int, default=2, help="spoken wake-ups per round")
    p.add_argument("--out", default="bench-results/mixed_soak.json")
    args = p.parse_args(argv)
    # A background run is stopped with SIGTERM: unwind, so the daemon, the card and the state_dir
    # mount are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as d, VirtualSoundCard() as card:
        result = mixed_soak(
            card, Path(d), minutes=args.minutes or None, conversations=args.conversations
        )
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {out}")
    return 0 if result["next_served"] == result["next_total"] else 1


if __name__ == "__main__":
    sys.exit(main())
