"""A local Live API simulator that the real google-genai SDK talks to over TLS."""
