"""Wake-word accuracy on voices never used for tuning (not a test):
`uv run python -m tests.bench.bench_wakeword_accuracy [--ci]`.

The evaluation of tests/wakeword/corpus.py: three synthesizers, voices split into a tuning part
and a held-out part, every condition, >= 2 h of negatives, and three neural voices apart (Piper's
joe, two of Kokoro's: the wake word in every condition, 30 minutes of their speech, near misses).
Prints, for each part:
- bare openWakeWord (a frame >= 0.5) vs the daemon path at default settings, per condition
  (recall) and per negative condition (false accepts per hour), and between them the daemon path
  without microWakeWord's model ('no mWW');
- the curve: recall (clean, and the 10 dB / room conditions) against false accepts per hour as the
  threshold falls, for the base model alone;
- the same curve for the daemon path, moving the second stage's accepting logit from the shipped
  operating point (chosen on the tuning voices) down and up: the recall in the worst 10 dB / room
  condition a given false-accept rate would buy, and what the shipped point gives up; and moving
  microWakeWord's cutoff from its author's (0.97);
- each held-out voice enrolled from 4 takes: recall of its other renditions per condition (and
  'alone': the same renditions with nobody enrolled), false
  accepts per hour over all negatives (its own ordinary speech included), and in enrolled-only
  mode the share of other speakers' wake words it accepts ('others'), of other voices of its own
  speaker's ('same': espeak-ng's language voices share one voice, and two flite and festival
  voices are one person's recordings; `corpus.speaker`), and of its own renditions ('own', mean
  over conditions);
- for the held-out part, the daemon path on the wake words of the held-out voices whose speaker no
  tuning voice shares (`corpus.NEW_SPEAKERS`, 7 of 11), at the defaults and along the daemon
  path's two curves ('| new speakers').
Writes bench-results/wakeword_accuracy.json. `--ci` runs CI's reduced set instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.config import WakewordConfig
from device.wakeword.micro import MicroSpec, micro_spec_for
from device.wakeword.models import resolve_model
from device.wakeword.second_stage import SecondStage, second_stage_for
from tests.wakeword import corpus, evaluate
from tests.wakeword.corpus import Spec
from tests.wakeword.evaluate import Analysis, Enrolled, Row, Stream

CURVE = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.02)
STAGE_CURVE = (-3.0, -2.0, -1.0, -0.5, 0.0, 1.0)
MICRO_CURVE = (0.5, 0.7, 0.9, 0.97, 0.99)
Results = Sequence[tuple[Spec, Stream, Analysis]]


def evaluate_all(specs: Sequence[Spec]) -> list[tuple[Spec, Stream, Analysis]]:
    """Build and analyse every stream (cached after the first run)."""
    done = evaluate.run_specs(specs)
    return [(spec, s, a) for spec, (s, a) in zip(specs, done, strict=True)]


NOISY = ("room", "far", *(f"{k} 10 dB" for k in ("white", "pink", "babble", "music", "tv")))
"""The product's noisy conditions: each 10 dB noise and the rooms."""


def new_speakers(results: Results, cfg: WakewordConfig) -> list[Row]:
    """Positives only, recall over `corpus.NEW_SPEAKERS`' wake words."""
    return evaluate.compare([r for r in results if r[0].kind == "pos"], cfg, corpus.NEW_SPEAKERS)


def table(rows: Sequence[Row], without: Sequence[Row] | None = None) -> list[str]:
    """The bare vs daemon table (`without`: a middle column, the daemon path without
    microWakeWord's model, rows in the same order)."""
    mid = [f"{r.daemon:>8.0%}" if r.kind == "pos" else f"{r.daemon:>8.2f}" for r in without or ()]
    mid_head = f"{'no mWW':>8}" if without else ""
    cols = mid or [""] * len(rows)
    lines = [f"{'positives: recall':<34}{'clips':>6}{'bare':>8}{mid_head}{'daemon':>8}"]
    lines += [
        f"  {r.condition:<32}{r.n:>6}{r.bare:>8.0%}{m}{r.daemon:>8.0%}"
        for r, m in zip(rows, cols, strict=True)
        if r.kind == "pos"
    ]
    lines.append(
        f"{'negatives: false accepts per hour':<34}{'min':>6}{'bare':>8}{mid_head}{'daemon':>8}"
    )
    lines += [
        f"  {r.condition:<32}{r.n:>6}{r.bare:>8.2f}{m}{r.daemon:>8.2f}"
        for r, m in zip(rows, cols, strict=True)
        if r.kind != "pos"
    ]
    return lines


def curve(results: Results) -> list[dict[str, float]]:
    """Base model alone: recall and false accepts per hour as the threshold falls."""
    out = []
    for t in CURVE:
        clean, noisy, fa, hours = [], [], 0, 0.0
        for spec, s, a in results:
            r = evaluate.bare(s, a, threshold=t)
            if spec.kind == "near":
                continue
            if spec.kind != "pos":
                fa += r.total
                hours += s.hours
            elif spec.condition == "clean":
                clean.append(r.recall())
            elif "5 dB" not in spec.condition and "20 dB" not in spec.condition:
                noisy.append(r.recall())
        out.append({"threshold": t, "clean": float(np.mean(clean)), "noisy_10dB_and_rooms": float(np.mean(noisy)),
                    "false_accepts_per_hour": fa / hours})  # fmt: skip
    return out


def stage_curve(results: Results) -> list[dict[str, Any]]:
    """Daemon path: recall (clean, mean and worst of the 10 dB / room conditions) and false
    accepts per hour as the second stage's accepting logit moves by each of STAGE_CURVE."""
    shipped = second_stage_for(resolve_model("hey_jarvis"))
    assert shipped is not None
    out = []
    for delta in STAGE_CURVE:
        stage = dataclasses.replace(shipped, accept=shipped.accept + delta)
        out.append({"accept_delta": delta, **_operating_point(results, stage=stage)})
    return out


def micro_curve(results: Results) -> list[dict[str, Any]]:
    """Daemon path: the same as microWakeWord's cutoff moves from its author's (0.97) down."""
    shipped = micro_spec_for(resolve_model("hey_jarvis"))
    assert shipped is not None
    return [
        {"cutoff": c, **_operating_point(results, micro=dataclasses.replace(shipped, cutoff=c))}
        for c in MICRO_CURVE
    ]


def _operating_point(
    results: Results, stage: SecondStage | None = None, micro: MicroSpec | None = None
) -> dict[str, Any]:
    """Recall clean, mean and worst of the 10 dB / room conditions, and false accepts per hour
    (near misses left out), of the daemon path with `stage` and `micro`; the same recall over
    `corpus.NEW_SPEAKERS`' wake words alone where the results hold any ("new_...")."""
    recall: dict[str, list[float]] = {}
    new: dict[str, list[tuple[float, int]]] = {}
    fa, hours = 0, 0.0
    for spec, s, a in results:
        if spec.kind == "near":
            continue
        r = evaluate.daemon(s, a, stage=stage, micro=micro)
        if spec.kind != "pos":
            fa += r.total
            hours += s.hours
        elif "5 dB" not in spec.condition and "20 dB" not in spec.condition:
            recall.setdefault(spec.condition, []).append(r.recall())
            new.setdefault(spec.condition, []).append(evaluate.recall_of(s, r, corpus.NEW_SPEAKERS))
    out = {"false_accepts_per_hour": fa / hours, **_summary(recall)}
    if any(n for pairs in new.values() for _, n in pairs):
        pooled = {c: [float(np.average([x for x, _ in v], weights=[n for _, n in v]))]
                  for c, v in new.items() if sum(n for _, n in v)}  # fmt: skip
        out |= {f"new_{k}": v for k, v in _summary(pooled).items()}
    return out


def _summary(recall: dict[str, list[float]]) -> dict[str, Any]:
    """Clean recall, and the mean and worst over the other conditions (and which is worst)."""
    noisy = {c: float(np.mean(v)) for c, v in recall.items() if c != "clean"}
    return {"clean": float(np.mean(recall["clean"])),
            "noisy_mean": float(np.mean(list(noisy.values()))),
            "noisy_worst": min(noisy.values()), "worst": min(noisy, key=lambda c: noisy[c])}  # fmt: skip


def _point(pt: dict[str, Any]) -> str:
    """An operating point as the curves print it (the new speakers' recall after a '|')."""
    line = (f"{pt['clean']:>5.0%} {pt['noisy_mean']:>5.0%} {pt['noisy_worst']:>5.0%} ({pt['worst']})"
            f" {pt['false_accepts_per_hour']:>7.2f}")  # fmt: skip
    if "new_clean" in pt:
        line += (f"  | new speakers {pt['new_clean']:>5.0%} {pt['new_noisy_mean']:>5.0%}"
                 f" {pt['new_noisy_worst']:>5.0%} ({pt['new_worst']})")  # fmt: skip
    return line


def enrolled_lines(found: Sequence[Enrolled]) -> list[str]:
    """One line per enrolled voice."""
    lines = [
        f"{'enrolled voice':<34}{'clean':>7}{'worst':>7}{'mean':>7}{'alone':>7}{'FA/h':>7}{'near':>7}{'others':>8}{'same':>6}{'own':>6}"
    ]
    for e in found:
        worst = min(e.recall, key=lambda k: e.recall[k])
        lines.append(
            f"  {e.voice:<32}{e.recall['clean']:>7.0%}{e.recall[worst]:>7.0%}"
            f"{np.mean(list(e.recall.values())):>7.0%}{np.mean(list(e.without.values())):>7.0%}"
            f"{e.false_accepts / e.hours:>7.2f}"
            f"{e.near_accepts / max(e.near_clips, 1):>7.0%}"
            f"{e.others_accepted:>8.1%}"
            + ("     -" if e.same_speaker_accepted is None else f"{e.same_speaker_accepted:>6.0%}")
            + f"{np.mean(list(e.only.values())):>6.0%}   worst: {worst}"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--ci", action="store_true", help="CI's reduced set")
    p.add_argument("--out", default="bench-results/wakeword_accuracy.json")
    args = p.parse_args()
    t0 = time.monotonic()
    specs = corpus.ci_specs() if args.ci else corpus.full_specs()
    results = evaluate_all(specs)
    cfg = WakewordConfig()
    no_micro = cfg.model_copy(update={"micro_wake_word": False})
    report: dict[str, Any] = {"settings": cfg.model_dump(mode="json")}
    for split in ("tune", "held-out", "neural"):
        part = [r for r in results if r[0].split == split]
        if not part:
            continue
        rows = evaluate.compare(part, cfg)
        without = evaluate.compare(part, no_micro)
        hours = sum(s.hours for spec, s, _ in part if spec.kind not in ("pos", "near"))
        print(f"\n== {split} voices ({hours:.1f} h of negatives) ==")
        print("\n".join(table(rows, without)))
        new_rows: list[Row] = []
        if split == "held-out":
            new_rows = new_speakers(part, cfg)
            lines = table(new_rows, new_speakers(part, no_micro))[: len(new_rows) + 1]
            noisy = [r.daemon for r in new_rows if r.condition in NOISY]
            print(
                f"the held-out voices whose speaker no tuning voice shares ({len(corpus.NEW_SPEAKERS)}):"
            )
            print("\n".join(lines))
            print(
                f"  10 dB and rooms, daemon path: mean {np.mean(noisy):.0%}, worst {min(noisy):.0%}"
            )
        c = curve(part)
        print("base model alone, threshold -> recall clean / 10 dB+rooms, false accepts per hour:")
        for pt in c:
            print(
                f"  {pt['threshold']:<5} {pt['clean']:>5.0%} {pt['noisy_10dB_and_rooms']:>5.0%} {pt['false_accepts_per_hour']:>7.2f}"
            )
        sc = stage_curve(part)
        print(
            "daemon path, second stage accept logit +delta -> recall clean / 10 dB+rooms mean /"
            " worst, false accepts per hour:"
        )
        for pt in sc:
            print(f"  {pt['accept_delta']:+5.1f} {_point(pt)}")
        mc = micro_curve(part)
        print(
            "daemon path, microWakeWord's cutoff -> recall clean / 10 dB+rooms mean / worst,"
            " false accepts per hour:"
        )
        for pt in mc:
            print(f"  {pt['cutoff']:<5} {_point(pt)}")
        voices = part[0][0].voices()
        found = [evaluate.enrolled(v, part, cfg) for v in voices]
        print("\n".join(enrolled_lines(found)))
        found_without = [evaluate.enrolled(v, part, no_micro) for v in voices]
        print("the same without microWakeWord's model:")
        print("\n".join(enrolled_lines(found_without)))
        report[split] = {
            "negative_hours": hours,
            "rows": [r.__dict__ for r in rows],
            "rows_without_micro": [r.__dict__ for r in without],
            "rows_new_speakers": [r.__dict__ for r in new_rows],
            "enrolled_without_micro": [e.__dict__ for e in found_without],
            "curve": c,
            "second_stage_curve": sc,
            "micro_curve": mc,
            "enrolled": [e.__dict__ for e in found],
        }
    report["seconds"] = round(time.monotonic() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
