"""Local wake-word detection (openWakeWord on ai-edge-litert, models from pyopen-wakeword).

Modules (one job each):
- `models`: resolve `wakeword.model` (built-in name or .tflite/.onnx path), load it, score 80 ms frames.
- `denoise`: noise suppression in openWakeWord's mel domain (on by `wakeword.noise_suppression`).
- `detector`: `Detector` (AudioBlocks -> WakeDetected, scoring on its own thread) and `Trigger`.
- `preroll`: `PreRoll`, the ring buffer that keeps the question said right after the wake word.
- `cli`: `livespeaker wakeword test FILE.wav...` and `livespeaker wakeword listen`.

Typical wiring (the daemon):

    preroll = PreRoll(cfg.wakeword.preroll_s)
    detector = Detector(cfg.wakeword)                     # loads the model (blocking: use a thread)
    tg.create_task(detector.run(source, on_detect), name="wake")
    detector.set_barge_in(speaker_is_playing)
    blocks = preroll.take_from(detection.end)             # then live blocks from preroll.latest_end
"""
