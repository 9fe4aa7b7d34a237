"""Choose `verifier.FAINT_GATE` and `verifier.FAINT_MATCH` on the tuning voices only (not a test):

    uv run python -m tests.wakeword.tune_verifier

Each tuning voice (corpus.TUNE_VOICES) is enrolled from four takes; the daemon path ("anyone"
mode) is scored on every tuning rendition in every condition (the voice's own renditions
recalled) and on all of the tuning negatives (false accepts per hour, summed over the enrolled
voices), for each candidate: the base-model score from which frames below `verifier.GATE` are
compared with the templates, and the similarity they need. The held-out voices play no part.
"""

from __future__ import annotations

import numpy as np

from device.config import WakewordConfig
from device.wakeword import verifier
from tests.bench.bench_wakeword_accuracy import evaluate_all
from tests.wakeword import corpus, evaluate

CANDIDATES = (
    (verifier.GATE, 0.0),
    *((g, m) for g in (1e-3, 1e-4) for m in (0.86, 0.88, 0.90, 0.92)),
)
"""(FAINT_GATE, FAINT_MATCH); the first is the verifier without faint frames."""


def main() -> None:
    specs = [s for s in corpus.full_specs() if s.split == "tune" and s.kind != "near"]
    results = evaluate_all(specs)
    cfg = WakewordConfig()
    voices = [(v, evaluate.enroll_voice(v)) for v in corpus.TUNE_VOICES]
    print(f"{'gate':>7}{'match':>7}{'clean':>7}{'mean':>6}{'worst':>17}{'FA/h':>7}  by condition")
    for gate, match in CANDIDATES:
        verifier.FAINT_GATE, verifier.FAINT_MATCH = gate, match
        own: dict[str, list[bool]] = {}
        false_accepts, hours = 0, 0.0
        for voice, ver in voices:
            for spec, stream, a in results:
                r = evaluate.daemon(stream, a, cfg, [ver])
                if spec.kind != "pos":
                    false_accepts += r.total
                    hours += stream.hours
                    continue
                for clip, hits in zip(stream.clips, r.hits, strict=True):
                    if clip.label.startswith(f"{voice} "):
                        own.setdefault(spec.condition, []).append(hits > 0)
        per = {c: float(np.mean(v)) for c, v in own.items()}
        worst = min(per, key=lambda c: per[c])
        print(
            f"{gate:>7.0e}{match:>7.2f}{per['clean']:>7.0%}{np.mean(list(per.values())):>6.0%}"
            f"{per[worst]:>5.0%} {worst:<11}{false_accepts / hours:>7.2f}  "
            + " ".join(f"{c.replace(' dB', '')} {v:.0%}" for c, v in per.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
