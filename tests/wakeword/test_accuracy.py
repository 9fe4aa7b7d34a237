"""Wake-word accuracy on held-out voices: CI's reduced version of `bench_wakeword_accuracy`.

Voices of three synthesizers never used to choose any setting (corpus.HELD_OUT_VOICES), and three
neural voices (corpus.NEURAL_VOICES: only the no-regression rule is asserted on them), three
renditions each, clean / room / far field / white, pink, babble, music and TV noise at 10 dB;
negatives: ordinary speech clean and in babble, TV and music, music alone, the speaker's replies,
near misses. Asserted: the daemon path never recalls less than bare openWakeWord (also on the
held-out voices whose speaker no tuning voice shares: corpus.NEW_SPEAKERS) nor fires more often on
any negative, at most 0.5 false accepts per hour; with the second stage and microWakeWord's model
the daemon path reaches the product's targets over all 11 held-out voices: 90 % clean and 70 % in
each noise and room condition (less one clip of 33: float kernels differ between CPUs; on the new
speakers alone the bench measures babble and TV at 10 dB below 70 %); an enrolled voice is recalled
clean every time and over all conditions more often than without enrollment, at the same
false-accept bound. How often enrolled-only mode lets another speaker's wake word pass is printed
('others'; other voices of its own speaker: 'same'; its own renditions it keeps: 'own'), not
asserted: it misses the product's target.
"""

from __future__ import annotations

import numpy as np
import pytest

from device.config import WakewordConfig
from tests.bench.bench_wakeword_accuracy import enrolled_lines, evaluate_all, new_speakers, table
from tests.wakeword import corpus, evaluate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
ENROLLED = (
    corpus.Voice("espeak", "en-gb-scotland"),
    corpus.Voice("flite", "slt"),
    corpus.Voice("festival", "ked_diphone"),
)
"""One held-out voice of each synthesizer plays the household member who enrolls."""


def test_held_out_voices_bare_vs_daemon_and_enrolled() -> None:
    everything = evaluate_all(corpus.ci_specs())
    results = [r for r in everything if r[0].split == "held-out"]
    neural = [r for r in everything if r[0].split == "neural"]
    assert len(results) + len(neural) == len(everything) and neural
    cfg = WakewordConfig()
    rows = evaluate.compare(results, cfg)
    neural_rows = evaluate.compare(neural, cfg)
    # The held-out voices whose speaker no tuning voice shares (corpus.NEW_SPEAKERS).
    new_rows = new_speakers(results, cfg)
    found = [evaluate.enrolled(v, results, cfg) for v in ENROLLED]
    hours = sum(s.hours for spec, s, _ in results if spec.kind not in ("pos", "near"))
    print("\n" + "\n".join([*table(rows), *enrolled_lines(found), f"negatives: {hours:.2f} h"]))
    print("neural voices (Piper, Kokoro):\n" + "\n".join(table(neural_rows)))
    print("held-out voices of new speakers:\n" + "\n".join(table(new_rows)[: len(new_rows) + 1]))

    errs = [
        e
        for spec, s, a in results
        if spec.kind == "pos"
        for e in evaluate.daemon(s, a, cfg).end_errors_ms
    ]
    print(
        f"wake word end estimate - true end: {min(errs):+.0f} .. {max(errs):+.0f} ms ({len(errs)})"
    )
    # The pre-roll starts at the estimate: a little of "...vis" may be sent, the question never cut.
    assert max(errs) <= 100
    # At most about a second before it (the base model alone errs as far: -1008 ms on one clip).
    assert min(errs) >= -1050

    for r in [*rows, *neural_rows, *new_rows]:
        assert r.daemon >= r.bare if r.kind == "pos" else r.daemon <= r.bare, r
    pos = {r.condition: r.daemon for r in rows if r.kind == "pos"}
    fa = sum(r.daemon * r.n / 60 for r in rows if r.kind == "neg")
    assert fa / hours <= 0.5, f"{fa} false accepts in {hours:.2f} h"
    # The daemon path (base model, second stage, microWakeWord's model) on voices never used to tune
    # it. Measured on this set: clean 100 %, the others 76-97 % (mean 86 %); bare openWakeWord 79 %
    # and 18-48 %. (Without microWakeWord's model: 64-91 %, mean 77 %.)
    assert pos["clean"] >= 0.90
    noisy = [v for k, v in pos.items() if k != "clean"]
    assert min(noisy) >= 0.70 - 1 / 33 and np.mean(noisy) >= 0.80, pos
    bare_pos = {r.condition: r.bare for r in rows if r.kind == "pos"}
    assert np.mean(noisy) >= np.mean([v for k, v in bare_pos.items() if k != "clean"]) + 0.25

    # An enrolled voice: its own other renditions, in every condition, in "anyone" mode.
    lifts = []
    for e in found:
        assert e.recall["clean"] >= 0.97, e
        assert e.false_accepts / e.hours <= 0.5, e
        assert all(e.recall[k] >= e.without[k] for k in e.recall), e
        mean, alone = np.mean(list(e.recall.values())), np.mean(list(e.without.values()))
        assert mean >= 0.70, e  # measured 75-96 % on these three voices
        lifts.append(mean - alone)
    # Measured: 4-21 points (mean 12.5) over the path with microWakeWord's model; 15 or more
    # before it, whose misses enrollment made up for.
    assert np.mean(lifts) >= 0.08, lifts
