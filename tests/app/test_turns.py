"""The turn phases, without asyncio: what the server says and local barge-ins move them."""

from __future__ import annotations

import pytest

from device.app.turns import TurnEvent, TurnPhase, step

pytestmark = pytest.mark.unit
P, E = TurnPhase, TurnEvent


def run(*events: TurnEvent, start: TurnPhase = P.QUIET) -> list[TurnPhase]:
    phases, phase = [], start
    for ev in events:
        phase = step(phase, ev)
        phases.append(phase)
    return phases


def test_a_question_and_its_answer() -> None:
    assert run(E.HEARD, E.AUDIO, E.AUDIO, E.COMPLETED) == [
        P.HEARD,
        P.ANSWERING,
        P.ANSWERING,
        P.QUIET,
    ]


def test_a_barge_in_mid_answer_drops_the_rest_of_that_turn_only() -> None:
    assert run(E.AUDIO, E.BARGE_IN, E.AUDIO, E.HEARD, E.COMPLETED, E.AUDIO) == [
        P.ANSWERING, P.DISCARDING, P.DISCARDING, P.DISCARDING, P.QUIET, P.ANSWERING,
    ]  # fmt: skip


def test_a_barge_in_with_no_answer_coming_has_nothing_to_drop() -> None:
    assert run(E.BARGE_IN) == [P.QUIET]
    assert run(E.HEARD, E.BARGE_IN, E.AUDIO) == [P.HEARD, P.HEARD, P.ANSWERING]
    # After turnComplete the answer is whole: the next audio answers the new question.
    assert run(E.AUDIO, E.COMPLETED, E.BARGE_IN, E.AUDIO) == [
        P.ANSWERING, P.QUIET, P.QUIET, P.ANSWERING,
    ]  # fmt: skip


@pytest.mark.parametrize("phase", list(TurnPhase))
def test_the_server_ending_a_turn_always_leaves_it_quiet(phase: TurnPhase) -> None:
    assert step(phase, E.INTERRUPTED) is P.QUIET
    assert step(phase, E.COMPLETED) is P.QUIET
