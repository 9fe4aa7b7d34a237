"""Choose `verifier.PRINT_MATCH` and `verifier.QUIET_DB` on the tuning voices only (not a test):

    uv run python -m tests.wakeword.tune_voiceprint

Each tuning voice (corpus.TUNE_VOICES) is enrolled from four takes and, in enrolled-only mode, the
daemon path is scored on three renditions of every tuning voice in CI's conditions (clean, room,
far field, 10 dB white / pink / babble / music / TV noise): its own renditions recalled, and the
share of the other voices' wake words it lets through, for each candidate distance and quiet
level. The held-out voices play no part.
"""

from __future__ import annotations

import numpy as np

from device.config import WakeAudience, WakewordConfig
from device.wakeword import verifier
from tests.bench.bench_wakeword_accuracy import evaluate_all
from tests.wakeword import corpus, evaluate

CANDIDATES = (
    *((d, q) for q in (15.0, 25.0) for d in (1.5, 2.0, 2.5)),
    (np.inf, 0.0),
)
"""(PRINT_MATCH, QUIET_DB); inf: no voiceprint check (the embedding templates alone)."""


def main() -> None:
    conds = (
        "clean",
        "room",
        "far",
        *(f"{k} 10 dB" for k in ("white", "pink", "babble", "music", "tv")),
    )
    results = evaluate_all([corpus.Spec("tune", "pos", c, 3) for c in conds])
    only = WakewordConfig(who_can_wake=WakeAudience.ENROLLED)
    voices = [(v, evaluate.enroll_voice(v)) for v in corpus.TUNE_VOICES]
    print(f"{'distance, dB':>12}{'own':>6}{'own worst':>17}{'others':>8}  by condition")
    for d, q in CANDIDATES:
        verifier.PRINT_MATCH = d
        verifier.QUIET_DB = q
        own: dict[str, list[float]] = {c: [] for c in conds}
        others: dict[str, list[float]] = {c: [] for c in conds}
        for voice, ver in voices:
            for spec, stream, a in results:
                r = evaluate.daemon(stream, a, only, [ver])
                for clip, hits in zip(stream.clips, r.hits, strict=True):
                    mine = clip.label.startswith(f"{voice} ")
                    (own if mine else others)[spec.condition].append(float(hits > 0))
        per = {c: float(np.mean(v)) for c, v in own.items()}
        worst = min(per, key=lambda c: per[c])
        let_through = float(np.mean([x for v in others.values() for x in v]))
        print(
            f"{d:>5.1f} {q:>5.0f}{np.mean(list(per.values())):>7.0%}{per[worst]:>6.0%} "
            f"{worst:<11}{let_through:>7.1%}  own "
            + " ".join(f"{c.split()[0]} {v:.0%}" for c, v in per.items())
            + " | others "
            + " ".join(f"{c.split()[0]} {np.mean(v):.0%}" for c, v in others.items())
        )


if __name__ == "__main__":
    main()
