"""The arbitration rule, on claims alone (no broker)."""

from __future__ import annotations

import pytest

from device.home.arbitration import LOOKBACK_S, Arbitration, Claim, winner

pytestmark = pytest.mark.unit


def test_the_loudest_wake_word_wins() -> None:
    claims = [Claim("hall", -30.0, 0.9), Claim("kitchen", -24.0, 0.6), Claim("bed", -36.0, 0.99)]
    assert winner(claims).speaker == "kitchen"


def test_a_speaker_in_a_conversation_keeps_it_however_quiet() -> None:
    claims = [Claim("kitchen", -20.0, 0.9), Claim("hall", -45.0, 0.5, busy=True)]
    assert winner(claims).speaker == "hall"


def test_ties_go_to_the_better_score_then_the_smaller_name() -> None:
    assert winner([Claim("b", -30.2, 0.7), Claim("a", -29.9, 0.6)]).speaker == "b"
    assert winner([Claim("b", -30.0, 0.7), Claim("a", -30.0, 0.7)]).speaker == "a"


def test_every_speaker_reaches_the_same_decision_from_the_same_claims() -> None:
    claims = {
        "kitchen": Claim("kitchen", -25.0, 0.8),
        "hall": Claim("hall", -31.0, 0.9),
        "bed": Claim("bed", -37.0, 0.7),
    }
    decisions = set()
    for me, mine in claims.items():
        a = Arbitration(me, 0.12)
        for claim in claims.values():
            a.heard(claim, 10.02)  # its own claim comes back from the broker too: ignored
        decisions.add(a.decide(mine, 10.0, 10.12).speaker)
    assert decisions == {"kitchen"}


def test_a_late_quieter_speaker_yields_to_the_one_already_answering() -> None:
    late = Arbitration("hall", 0.12)
    late.heard(Claim("kitchen", -25.0, 0.8), 10.0)
    late.heard(Claim("kitchen", -25.0, 0.8, busy=True), 10.12)  # kitchen won and answers
    # hall's detector fired 200 ms after kitchen's (it heard the wake word quieter)
    assert late.decide(Claim("hall", -31.0, 0.6), 10.2, 10.32).speaker == "kitchen"


def test_a_late_louder_speaker_also_yields_to_the_one_already_answering() -> None:
    late = Arbitration("hall", 0.12)
    late.heard(Claim("kitchen", -30.0, 0.8, busy=True), 10.12)
    assert late.decide(Claim("hall", -20.0, 0.9), 10.3, 10.42).speaker == "kitchen"


def test_old_claims_do_not_count() -> None:
    a = Arbitration("hall", 0.12)
    a.heard(Claim("kitchen", -20.0, 0.8), 10.0)
    a.heard(Claim("kitchen", -20.0, 0.8, busy=True), 10.12)
    later = 10.12 + LOOKBACK_S + 0.5  # a new wake word, kitchen's conversation is long over
    assert a.decide(Claim("hall", -30.0, 0.7), later, later + 0.12).speaker == "hall"


def test_claims_survive_the_wire_and_bad_ones_are_refused() -> None:
    c = Claim("kitchen", -23.5, 0.87, busy=True)
    assert Claim.from_json(c.to_json()) == c
    for bad in (b"", b"{}", b'{"speaker": "x"}', b"[1, 2]", b"not json"):
        with pytest.raises(ValueError, match="not a wake claim"):
            Claim.from_json(bad)
