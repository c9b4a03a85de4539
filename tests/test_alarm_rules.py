"""Alarm rules (pure): each fires on its condition and only then."""

from __future__ import annotations

import pytest

from broadcaster.fleet.alarms import SpeakerState, evaluate
from broadcaster.settings import FleetSettings

S = FleetSettings()
NOW = 10_000_000_000
SEC = 1_000_000
HEALTHY = SpeakerState(
    online=True, presence_changed_us=NOW - 3600 * SEC, last_seen_us=NOW - 5 * SEC
)


@pytest.mark.parametrize(
    ("changes", "kind", "needle"),
    [
        ({"online": False, "presence_changed_us": NOW - 91 * SEC}, "offline", "offline"),
        ({"last_seen_us": NOW - 95 * SEC}, "offline", "no heartbeat for 95 s"),
        ({"amp_fault": True}, "amp_fault", "amplifier"),
        ({"temperature_c": 78.5}, "temperature", "78.5 °C"),
        ({"weak_since_us": NOW - 601 * SEC}, "weak_signal", "-105 dBm"),
        ({"missed_programme": "Bản tin sáng: no proof of play"}, "missed_programme", "Bản tin"),
        ({"failed_alert": "Bão số 3: missed"}, "failed_alert", "Bão"),
        ({"online": False, "presence_changed_us": None, "last_seen_us": None,
          "watching_since_us": NOW - 100 * SEC}, "offline", "never seen"),
    ],
)  # fmt: skip
def test_each_rule_fires_on_its_condition(
    changes: dict[str, object], kind: str, needle: str
) -> None:
    facts = SpeakerState(**{**HEALTHY.__dict__, **changes})  # type: ignore[arg-type]
    out = evaluate(facts, NOW, S)
    assert set(out) == {kind} and needle in out[kind]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"online": False, "presence_changed_us": NOW - 30 * SEC},  # not yet 90 s
        {"temperature_c": 69.9},
        {"weak_since_us": NOW - 599 * SEC},  # weak, but not for 10 minutes yet
        {"online": False, "presence_changed_us": None, "last_seen_us": None,
         "watching_since_us": NOW - 10 * SEC},  # the controller just started
    ],
)  # fmt: skip
def test_nothing_fires_short_of_the_thresholds(changes: dict[str, object]) -> None:
    facts = SpeakerState(**{**HEALTHY.__dict__, **changes})  # type: ignore[arg-type]
    assert evaluate(facts, NOW, S) == {}
