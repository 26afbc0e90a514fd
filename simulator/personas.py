"""Contact personas: how likely a kind of contact is to receive, open, click and answer, and when.

A persona is what makes the monitor's figures mean something: enthusiasts land in the high tiers,
dormant contacts in ``no_engagement``, and every persona interacts at its own hours of the week
(in the org's time zone), so the best-send-time figures point at real clusters instead of noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

CHANNELS: Final = ("sms", "email", "whatsapp")


@dataclass(frozen=True, slots=True)
class ChannelOdds:
    """Probabilities for one channel, each per DELIVERED message except ``delivery``.

    ``open`` is ignored on channels that have no read receipts (sms); ``reply`` on e-mail, where
    the platform does not receive answers.
    """

    delivery: float
    open: float
    click: float
    reply: float


@dataclass(frozen=True, slots=True)
class Persona:
    """A kind of contact.

    ``peak_hours`` are local hours (0-23) where interactions cluster; ``weekday_weights`` scale
    Monday..Sunday. ``channel_affinity`` multiplies the org's channel mix, ``frequency``
    multiplies the mean number of messages a contact gets, ``unsubscribe`` is the chance per
    channel of opting out during the window, ``reopen`` the chance an opened message is opened
    again.
    """

    name: str
    population: float
    odds: MappingProxyType[str, ChannelOdds]
    channel_affinity: MappingProxyType[str, float]
    peak_hours: tuple[int, ...]
    weekday_weights: tuple[float, float, float, float, float, float, float]
    frequency: float
    unsubscribe: float
    reopen: float
    immediacy: float

    def hour_of_week_weights(self, shift: int = 0) -> tuple[float, ...]:
        """168 weights (0 = Monday 00:00 local): peaks, their shoulders, waking hours, night.

        ``shift`` moves the peaks by whole hours, so two contacts of one persona are alike but
        not identical.
        """
        by_hour = [0.01] * 24
        for hour in range(7, 23):
            by_hour[hour] = 0.06
        for peak in self.peak_hours:
            hour = (peak + shift) % 24
            by_hour[hour] = 1.0
            for side in ((hour - 1) % 24, (hour + 1) % 24):
                by_hour[side] = max(by_hour[side], 0.35)
        return tuple(by_hour[h] * self.weekday_weights[day] for day in range(7) for h in range(24))


def _odds(**per_channel: tuple[float, float, float, float]) -> MappingProxyType[str, ChannelOdds]:
    return MappingProxyType({ch: ChannelOdds(*values) for ch, values in per_channel.items()})


def _affinity(sms: float, email: float, whatsapp: float) -> MappingProxyType[str, float]:
    return MappingProxyType({"sms": sms, "email": email, "whatsapp": whatsapp})


WEEKDAYS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.45, 0.35)
EVERY_DAY = (1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.9)
WEEKENDS = (0.5, 0.5, 0.5, 0.5, 0.7, 1.3, 1.3)

PERSONAS: Final[tuple[Persona, ...]] = (
    Persona(
        name="enthusiast",
        population=0.12,
        # (delivery, open, click, reply) per channel
        odds=_odds(
            sms=(0.97, 0.0, 0.30, 0.25),
            email=(0.98, 0.78, 0.32, 0.0),
            whatsapp=(0.99, 0.93, 0.38, 0.40),
        ),
        channel_affinity=_affinity(1.0, 1.0, 1.3),
        peak_hours=(7, 12, 20),
        weekday_weights=EVERY_DAY,
        frequency=1.3,
        unsubscribe=0.01,
        reopen=0.35,
        immediacy=0.45,
    ),
    Persona(
        name="regular",
        population=0.38,
        odds=_odds(
            sms=(0.95, 0.0, 0.10, 0.08),
            email=(0.96, 0.36, 0.08, 0.0),
            whatsapp=(0.97, 0.68, 0.12, 0.12),
        ),
        channel_affinity=_affinity(1.0, 1.0, 1.0),
        peak_hours=(12, 18),
        weekday_weights=WEEKDAYS,
        frequency=1.0,
        unsubscribe=0.03,
        reopen=0.15,
        immediacy=0.25,
    ),
    Persona(
        name="lurker",
        population=0.25,
        odds=_odds(
            sms=(0.94, 0.0, 0.02, 0.01),
            email=(0.95, 0.24, 0.015, 0.0),
            whatsapp=(0.96, 0.42, 0.02, 0.02),
        ),
        channel_affinity=_affinity(0.8, 1.2, 1.0),
        peak_hours=(22, 23),
        weekday_weights=WEEKENDS,
        frequency=0.9,
        unsubscribe=0.05,
        reopen=0.25,
        immediacy=0.1,
    ),
    Persona(
        name="sms_only",
        population=0.10,
        odds=_odds(
            sms=(0.97, 0.0, 0.14, 0.22),
            email=(0.60, 0.05, 0.01, 0.0),
            whatsapp=(0.50, 0.10, 0.01, 0.01),
        ),
        channel_affinity=_affinity(1.0, 0.0, 0.0),
        peak_hours=(8, 17),
        weekday_weights=WEEKDAYS,
        frequency=0.7,
        unsubscribe=0.04,
        reopen=0.0,
        immediacy=0.3,
    ),
    Persona(
        name="dormant",
        population=0.15,
        odds=_odds(
            sms=(0.85, 0.0, 0.004, 0.002),
            email=(0.80, 0.03, 0.002, 0.0),
            whatsapp=(0.86, 0.07, 0.004, 0.004),
        ),
        channel_affinity=_affinity(1.0, 1.0, 1.0),
        peak_hours=(10,),
        weekday_weights=EVERY_DAY,
        frequency=0.8,
        unsubscribe=0.08,
        reopen=0.0,
        immediacy=0.05,
    ),
)

PERSONA_BY_NAME: Final = MappingProxyType({p.name: p for p in PERSONAS})
