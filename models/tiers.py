"""Engagement tiers, shared by the counting core, the outputs and the read API."""

from __future__ import annotations

from typing import Literal

Tier = Literal["no_engagement", "low", "high", "very_high"]

TIERS: tuple[Tier, ...] = ("no_engagement", "low", "high", "very_high")
