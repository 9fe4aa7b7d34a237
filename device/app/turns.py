"""Where the current turn of a conversation is: a phase, and its transitions as data.

    phase = step(phase, TurnEvent.AUDIO)     # model audio arrived
    if phase is TurnPhase.DISCARDING: ...    # barged in mid-answer: drop it

Pure (no asyncio, no I/O): device.app.conversation keeps one phase and feeds it what the server
says (heard the user, model audio, interrupted, turn complete) and local barge-ins.
"""

from __future__ import annotations

from enum import Enum


class TurnPhase(Enum):
    """Where the current turn is."""

    QUIET = "quiet"
    """No question pending and no answer coming: the user may speak."""
    HEARD = "heard"
    """The server heard the user (input transcript) and has not answered yet: silence does
    not end the conversation meanwhile (tool calls, a slow network)."""
    ANSWERING = "answering"
    """The model's audio for this turn is coming and plays."""
    DISCARDING = "discarding"
    """Barged in (wake word, button) while the answer was still coming: the rest of this
    turn's audio is dropped until the server ends the turn."""


class TurnEvent(Enum):
    """What moves the phase."""

    HEARD = "heard"
    """An input transcript: the server heard the user."""
    AUDIO = "audio"
    """Model audio."""
    INTERRUPTED = "interrupted"
    """The server's `interrupted` (its voice activity detection heard the user)."""
    COMPLETED = "completed"
    """The server's turnComplete."""
    BARGE_IN = "barge_in"
    """A local barge-in: the wake word or the button over the answer."""


P, E = TurnPhase, TurnEvent
TRANSITIONS: dict[tuple[TurnPhase, TurnEvent], TurnPhase] = {
    (P.QUIET, E.HEARD): P.HEARD,
    (P.QUIET, E.AUDIO): P.ANSWERING,
    (P.HEARD, E.AUDIO): P.ANSWERING,
    (P.ANSWERING, E.BARGE_IN): P.DISCARDING,
    # The server ends a turn the same way whatever it was doing.
    **{(p, E.INTERRUPTED): P.QUIET for p in P},
    **{(p, E.COMPLETED): P.QUIET for p in P},
}
"""(phase, event) -> next phase; a pair not listed leaves the phase as it is: audio while
discarding is still the old answer's, a transcript while answering changes nothing until the
server ends the turn, a barge-in before any answer audio has nothing to drop."""


def step(phase: TurnPhase, event: TurnEvent) -> TurnPhase:
    """The phase after `event`."""
    return TRANSITIONS.get((phase, event), phase)
