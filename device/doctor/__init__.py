"""`livespeaker doctor`: a non-interactive self-check of a device, one module per check."""
