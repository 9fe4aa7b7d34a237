"""livespeaker: a Raspberry Pi smart speaker on the Gemini Live API."""

__version__ = "0.1.0"
