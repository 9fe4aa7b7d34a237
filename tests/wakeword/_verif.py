"""Tune MATCH/GATE of the voice verifier on a split (frame-level approximation)."""
import sys, numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from device.wakeword.enroll import enroll
from device.wakeword.models import load_model
from device.wakeword.verifier import unit_rows, WINDOW
from tests.wakeword.corpus import full_specs, say, WAKE, Voice, TUNE_VOICES, HELD_OUT_VOICES
from tests.wakeword.evaluate import analyse, AFTER
split = sys.argv[1]
voices = TUNE_VOICES if split == "tune" else HELD_OUT_VOICES
ENROLL = [(0.95, -1), (1.05, 1), (0.9, 1), (1.1, -1)]
model = load_model("hey_jarvis")
V = {}
for v in voices:
    takes = [say(v, WAKE, t, s) for t, s in ENROLL]
    V[v] = enroll(str(v).replace(":", "-").replace("+","-").lower()[:32], takes, model).templates
    print(v, len(V[v]), flush=True)
specs = [s for s in full_specs() if s.split == split]
data = []
for spec in specs:
    st = spec.build(); a = analyse(st)
    emb = a.embeddings.astype(np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-6)
    win = sliding_window_view(emb, (WINDOW, 96))[:, 0]  # (N-15, 16, 96): window ending at k+15
    frames = np.flatnonzero(a.scores >= 0.0)
    frames = frames[frames >= WINDOW - 1]
    sims = {}
    for v, T in V.items():
        s = np.full(len(a.scores), -1.0, np.float32)
        # window ending at frame k = win[k-15]
        W = win[frames - (WINDOW - 1)]
        s[frames] = np.einsum("ktd,ntd->nk", T, W, optimize=True).max(axis=1) / WINDOW
        sims[v] = s
    starts = np.array([c.start for c in st.clips])
    clip_of = np.full(len(a.scores), -1)
    for k in range(len(a.scores)):
        end = (k + 1) * 1280
        i = np.searchsorted(starts, end, side="right") - 1
        if i >= 0 and end < st.clips[i].end + AFTER:
            clip_of[k] = i
    data.append((spec, st, a, sims, clip_of))
    print("analysed", spec, flush=True)

def clip_voice(label): return label.split(" ")[0]
for gate in (0.0, 0.002, 0.01, 0.02, 0.05):
    for match in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        own = {}; others = []; fa = 0; hours = 0; fa_speech_own = 0
        for spec, st, a, sims, clip_of in data:
            if spec.kind == "pos":
                rec = []
                for v in voices:
                    ok = (a.scores >= gate) & (sims[v] >= match)
                    hit = np.zeros(len(st.clips), bool); hit[clip_of[ok & (clip_of >= 0)]] = True
                    labels = [clip_voice(c.label) for c in st.clips]
                    mine = np.array([l == str(v) for l in labels])
                    rec.append(hit[mine].mean()); others.append(hit[~mine].mean())
                own[spec.condition] = np.mean(rec)
            elif spec.kind == "near":
                continue
            else:
                hours += st.hours
                for v in voices:
                    ok = (a.scores >= gate) & (sims[v] >= match)
                    # count detections with a 2 s refractory
                    ks = np.flatnonzero(ok); last = -10**9; n = 0
                    for k in ks:
                        if k - last >= 25: n += 1; last = k
                    fa += n
        fa_h = fa / hours / len(voices)
        print(f"gate {gate:<6} match {match:<5} enrolled clean {own['clean']:.0%} min {min(own.values()):.0%} ({min(own, key=own.get)}) mean {np.mean(list(own.values())):.0%} | others accepted {np.mean(others):.1%} | FA/h per voice {fa_h:.2f}", flush=True)
