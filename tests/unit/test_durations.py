"""Durations as runbooks write them and as the report prints them."""

from __future__ import annotations

import pytest

from drkit.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800.0),
        ("0s", 0.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("1m30s", 90.0),
        (" 10s ", 10.0),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts_the_runbook_grammar(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "30", "m30", "30 minutes", "1h-5m", "5m5m", "-5s", "1w", -3, True, None]
)
def test_parse_duration_rejects_with_the_bad_text_and_the_accepted_form(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) in message
    assert "expected" in message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0s"),
        (0.5, "0.5s"),
        (42.31, "42.3s"),
        (59.96, "1m 00s"),
        (245, "4m 05s"),
        (3720, "1h 02m"),
        (3 * 86400 + 7200, "3d 02h"),
        (-5, "-5.0s"),
    ],
)
def test_format_duration_is_readable(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
