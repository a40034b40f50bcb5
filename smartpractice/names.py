"""Names of people and practices as typed, tidied: "Dr.  Müller" typed with two spaces is
kept with one, so that no mail subject or greeting shows the gap (issue 14)."""

from __future__ import annotations


def tidy(typed: str) -> str:
    """Every run of whitespace (spaces, tabs, a pasted line break) becomes one space."""
    return " ".join(typed.split())
