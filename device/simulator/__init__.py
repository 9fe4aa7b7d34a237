"""A local Live API simulator that the real google-genai SDK talks to over TLS.

- server.py: LiveSimulator (start/stop, base_url, connections + recorded frames, inject faults,
  register utterances) and SimulatorThread for synchronous callers.
- connection.py: one session on one websocket (setup checks, VAD, replies, tools, resumption).
- protocol.py: wire details (both key casings, both base64 alphabets, paths, close reasons).
- audio.py: energy VAD, utterance matching (the simulator cannot transcribe), espeak-ng replies.
- brain.py: what the simulated model answers; faults.py: failures to inject; cmd.py: the CLI.
"""
