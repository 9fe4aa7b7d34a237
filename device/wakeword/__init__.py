"""Local wake-word detection (openWakeWord on ai-edge-litert, models from pyopen-wakeword; with
microWakeWord's model beside it, from pymicro-wakeword).

Modules (one job each):
- `features`: openWakeWord's mel spectrogram + speech embedding on ai-edge-litert (no openwakeword import).
- `models`: resolve `wakeword.model` (built-in name or .tflite/.onnx path), load it, score 80 ms frames.
- `denoise`: noise suppression in openWakeWord's mel domain (opt-in: `wakeword.noise_suppression`).
- `second_stage`: hey_jarvis's trained second stage (a small numpy network on the same embeddings).
- `micro`: microWakeWord's model for the same wake word, heard beside openWakeWord's.
- `verifier`: enrolled voices (templates of speech embeddings) and how a frame is matched to them.
- `enroll`, `augment`: takes checked and turned into a voice; `voices_cmd`: enroll / list / forget.
- `detector`: `Detector` (AudioBlocks -> WakeDetected, scoring on its own thread), `FrameTrigger`, and
  `build_detector` (the configured model, its second stage, every enrolled voice in state_dir).
- `preroll`: `PreRoll`, the ring buffer that keeps the question said right after the wake word.
- `cli`: `livespeaker wakeword test FILE.wav...` and `livespeaker wakeword listen`.

Typical wiring (the daemon):

    preroll = PreRoll(cfg.wakeword.preroll_s)
    detector = build_detector(cfg.wakeword, state_dir)    # loads the model (blocking: use a thread)
    tg.create_task(detector.run(source, on_detect), name="wake")
    detector.set_barge_in(speaker_is_playing)
    blocks = preroll.take_from(detection.end)             # then live blocks from preroll.latest_end
"""
