"""Timers and alarms kept on the device: the model sets them with local tools, the device rings.

- `model`: what a timer and an alarm are, when they are due (pure, no I/O).
- `book`: the pending ones and recent outcomes, persisted atomically in state_dir.
- `scheduler`: the task that notices what is due and tells the appliance to ring.
- `tools`: the tool declarations the Live session offers, and their execution.
- `ringer`: the repeating ring sound on the speaker.
- `cmd`: `livespeaker timers` (list, cancel).
"""
