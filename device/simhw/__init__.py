"""Simulated hardware for machines without a Pi: a virtual sound card and synthetic speech.

Used by `livespeaker demo` and by the tests; never by the daemon on a real device.
"""
