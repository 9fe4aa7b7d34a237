"""The one place words said to or by the speaker are logged, and only with privacy.log_transcripts.

Off (the default), no words reach a log at any level: the journal of a Pi with a persistent journal
keeps them on the SD card for months. On, each turn's transcripts are logged at debug level on the
`device.transcripts` logger, whose own level lets them through whatever --log-level says: the
switch is `log_transcripts`, and `journalctl -p info` still hides them.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "device.transcripts"
log = logging.getLogger(LOGGER_NAME)
log.setLevel(logging.DEBUG)


class Transcripts:
    """Logs a turn's words when enabled; does nothing at all otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def turn(self, heard: str, answered: str) -> None:
        """What the user said and what the model answered in one turn."""
        if self.enabled:
            log.debug(
                "turn: heard %r, answered %r",
                heard,
                answered,
                extra={"USER_TEXT": heard, "MODEL_TEXT": answered},
            )
