"""What a run holds, computed from the records themselves (for ``--dry-run`` and the tests).

Figures per persona are counted from the good records with the SPEC's "unique per message"
rule, so they show what the worker should find: enthusiasts engaged, dormant contacts not, and
each persona's interactions at its own local hours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from engagement_monitor.keyspace import record_key
from simulator.config import SimConfig, SimRecord
from simulator.world import build_orgs, personas_of

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(slots=True)
class PersonaFigures:
    """Per persona: distinct messages by what happened to them, and interactions by local hour."""

    contacts: int = 0
    dispatched: int = 0
    delivered: int = 0
    opened: int = 0
    open_tracked_delivered: int = 0
    clicked: int = 0
    replied: int = 0
    engaged: int = 0
    hours: Counter[int] = field(default_factory=Counter)  # local hour of day -> interactions

    def rate(self, part: int, whole: int) -> float | None:
        return None if whole == 0 else round(100.0 * part / whole, 2)

    @property
    def open_rate(self) -> float | None:
        """Opens over deliveries, on the channels that track opens (e-mail, WhatsApp)."""
        return self.rate(self.opened, self.open_tracked_delivered)

    @property
    def engagement_rate(self) -> float | None:
        return self.rate(self.engaged, self.delivered)

    def top_hours(self, n: int = 3) -> list[int]:
        return [hour for hour, _ in self.hours.most_common(n)]


@dataclass(slots=True)
class Summary:
    records: int = 0
    bytes: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_contact_type: Counter[str] = field(default_factory=Counter)
    origins: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)  # canonical | other | none
    first_event: datetime | None = None
    last_event: datetime | None = None
    personas: dict[str, PersonaFigures] = field(default_factory=dict)
    timezones: dict[str, str] = field(default_factory=dict)
    examples: dict[str, tuple[str, str]] = field(default_factory=dict)  # persona -> (org, id)


def summarize(records: Iterable[SimRecord], config: SimConfig) -> Summary:
    """Consume ``records`` (the output of ``generate(config)``) and tell what they hold."""
    s = Summary()
    orgs = {org.org_id: org for org in build_orgs(config)}
    s.timezones = {org_id: org.timezone for org_id, org in orgs.items()}
    persona = personas_of(config)
    for key, name in persona.items():
        s.personas.setdefault(name, PersonaFigures()).contacts += 1
        s.examples.setdefault(name, key)
    # (org, contact, message) -> (channel, set of topics)
    messages: dict[tuple[str, str, str], tuple[str, set[str]]] = {}
    interactions: list[tuple[str, str, str, str]] = []  # org, contact, message, time
    for r in records:
        s.records += 1
        s.bytes += len(r.value)
        s.by_topic[r.topic] += 1
        s.by_kind[r.kind] += 1
        if r.kind == "malformed":
            s.by_code[r.expected_code or "?"] += 1
            continue
        if r.kind == "duplicate":
            continue
        value = orjson.loads(r.value)
        org_id, contact_id = value["org_id"], value["contact_id"]
        if r.key is None:
            s.keys["none"] += 1
        elif r.key == record_key(org_id, contact_id):
            s.keys["canonical"] += 1
        else:
            s.keys["other"] += 1
        moment = datetime.fromisoformat(value["occurred_at"])
        if s.first_event is None or moment < s.first_event:
            s.first_event = moment
        if s.last_event is None or moment > s.last_event:
            s.last_event = moment
        if r.topic == "contact":
            s.by_contact_type[value["type"]] += 1
            origin = value.get("origin")
            if isinstance(origin, dict):
                variant = origin["type"]
                if origin["type"] in ("direct", "chatbot"):
                    variant += "+account" if origin.get("account") else "-account"
                s.origins[variant] += 1
            continue
        if r.topic == "unsubscribe":
            continue
        message = (org_id, contact_id, value["message_id"])
        channel, seen = messages.setdefault(message, (value["channel"], set()))
        if value.get("machine") or value.get("bot"):
            # A privacy proxy's open or a flagged scanner's click proves delivery only (§7.1;
            # the unflagged scanner clicks, told apart by their delay, count here).
            seen.add("delivery")
            continue
        seen.add(r.topic)
        if r.topic in ("open", "click", "reply"):
            interactions.append((org_id, contact_id, value["message_id"], value["occurred_at"]))
    first_interaction: dict[tuple[str, str, str], datetime] = {}
    for org_id, contact_id, message_id, when in interactions:
        moment = datetime.fromisoformat(when)
        message = (org_id, contact_id, message_id)
        if message not in first_interaction or moment < first_interaction[message]:
            first_interaction[message] = moment
    for (org_id, contact_id, message_id), (channel, seen) in messages.items():
        who = persona.get((org_id, contact_id))
        if who is None or "dispatch" not in seen:
            continue
        f = s.personas[who]
        f.dispatched += 1
        engaged = bool(seen & {"open", "click", "reply"})
        if not (engaged or "delivery" in seen or "complaint" in seen):
            continue
        f.delivered += 1
        f.open_tracked_delivered += channel in ("email", "whatsapp")
        f.opened += "open" in seen
        f.clicked += "click" in seen
        f.replied += "reply" in seen
        f.engaged += engaged
        first = first_interaction.get((org_id, contact_id, message_id))
        if first is not None:
            f.hours[first.astimezone(ZoneInfo(s.timezones[org_id])).hour] += 1
    return s


def render(summary: Summary, config: SimConfig) -> str:
    """A plain-text report (no colours: it is also written to logs and CI output)."""
    lines = [
        f"simulated stream: {summary.records:,} records, {summary.bytes / 1e6:.1f} MB, "
        f"seed {config.seed}, now {config.now.isoformat(timespec='seconds')}",
        f"  orgs: {config.orgs}, contacts per org: {config.contacts_per_org}, "
        f"mean messages per contact: {config.messages_per_contact:g}, span: {config.days} days",
        "  by topic: " + ", ".join(f"{t} {n:,}" for t, n in sorted(summary.by_topic.items())),
        "  by kind: " + ", ".join(f"{k} {n:,}" for k, n in sorted(summary.by_kind.items())),
        "  malformed by expected code: "
        + (", ".join(f"{c} {n}" for c, n in sorted(summary.by_code.items())) or "none"),
        "  contact records: "
        + ", ".join(f"{t} {n}" for t, n in sorted(summary.by_contact_type.items())),
        "  origins: " + ", ".join(f"{t} {n}" for t, n in sorted(summary.origins.items())),
        "  keys of good records: "
        + ", ".join(f"{k} {n:,}" for k, n in sorted(summary.keys.items())),
    ]
    if summary.first_event is not None and summary.last_event is not None:
        lines.append(
            f"  event time: {summary.first_event.isoformat(timespec='seconds')} .. "
            f"{summary.last_event.isoformat(timespec='seconds')}"
        )
    lines.append("  personas (distinct messages; rates in %, interactions' top local hours):")
    for name, f in sorted(summary.personas.items()):
        lines.append(
            f"    {name:<11} contacts {f.contacts:>6,}  dispatched {f.dispatched:>7,}  "
            f"delivered {f.delivered:>7,}  open {_pct(f.open_rate)}  "
            f"engagement {_pct(f.engagement_rate)}  hours {f.top_hours()}"
        )
    lines.append("  example contacts (GET /v1/orgs/{org}/contacts/{id}/monitor):")
    for name, (org_id, contact_id) in sorted(summary.examples.items()):
        lines.append(f"    {name:<11} {org_id} {contact_id}")
    zones = orjson.dumps(summary.timezones).decode()
    lines.append(f"  org time zones, for the worker's best send times: EM_ORG_TIMEZONES='{zones}'")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.2f}"


def weekday_name(index: int) -> str:
    return _WEEKDAYS[index]
