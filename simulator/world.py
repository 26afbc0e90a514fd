"""The simulated customer base: organizations and their contacts.

Everything here is derived from the seed alone, org by org and contact by contact (each with its
own ``random.Random`` seeded from ``"{seed}/…"``), so a contact's profile and history do not
depend on how many other contacts are generated or in what chunks.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from simulator.config import SimConfig
from simulator.personas import CHANNELS, PERSONAS, Persona

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _phone_br(rng: random.Random) -> str:
    return (
        "+55" + rng.choice(("11", "21", "31", "41", "51", "61", "71", "81")) + "9" + _digits(rng, 8)
    )


def _phone_us(rng: random.Random) -> str:
    area = rng.choice(("212", "415", "617", "312", "512", "305"))
    return "+1" + area + str(rng.randint(2, 9)) + _digits(rng, 6)


def _phone_pt(rng: random.Random) -> str:
    return "+3519" + rng.choice("1236") + _digits(rng, 7)


def _phone_in(rng: random.Random) -> str:
    return "+91" + rng.choice("6789") + _digits(rng, 9)


def _phone_au(rng: random.Random) -> str:
    return "+614" + _digits(rng, 8)


@dataclass(frozen=True, slots=True)
class _OrgTemplate:
    slug: str
    name: str
    timezone: str
    phone: Callable[[random.Random], str]
    channel_mix: tuple[float, float, float]  # sms, email, whatsapp
    whatsapp_share: float  # of contacts with a phone that use WhatsApp
    utc_timestamps: bool  # producer writes "Z" times, else local offsets
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    apps: tuple[str, ...]


_TEMPLATES: Final = (
    _OrgTemplate(
        "acme",
        "Acme Varejo",
        "America/Sao_Paulo",
        _phone_br,
        (0.15, 0.30, 0.55),
        0.9,
        False,
        (
            "Ana",
            "João",
            "Maria",
            "Pedro",
            "Luíza",
            "Carlos",
            "Fernanda",
            "Rafael",
            "Júlia",
            "Bruno",
        ),
        ("Souza", "Silva", "Oliveira", "Santos", "Pereira", "Costa", "Almeida", "Ribeiro"),
        ("Omie", "RD Station"),
    ),
    _OrgTemplate(
        "globex",
        "Globex Retail",
        "America/New_York",
        _phone_us,
        (0.35, 0.55, 0.10),
        0.3,
        True,
        (
            "James",
            "Mary",
            "Robert",
            "Linda",
            "Michael",
            "Susan",
            "David",
            "Karen",
            "Emily",
            "Jason",
        ),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia"),
        ("HubSpot", "Shopify"),
    ),
    _OrgTemplate(
        "initech",
        "Initech Europa",
        "Europe/Lisbon",
        _phone_pt,
        (0.15, 0.50, 0.35),
        0.75,
        True,
        ("Inês", "Tiago", "Beatriz", "Duarte", "Matilde", "Rodrigo", "Leonor", "Gonçalo"),
        ("Ferreira", "Rodrigues", "Martins", "Gomes", "Lopes", "Marques", "Carvalho"),
        ("Salesforce", "Zendesk"),
    ),
    _OrgTemplate(
        "umbrella",
        "Umbrella Health",
        "Asia/Kolkata",
        _phone_in,
        (0.30, 0.10, 0.60),
        0.95,
        False,
        ("Aarav", "Priya", "Vivaan", "Ananya", "Arjun", "Diya", "Rohan", "Isha", "Kabir"),
        ("Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair"),
        ("Zoho CRM", "Freshdesk"),
    ),
    _OrgTemplate(
        "hooli",
        "Hooli Australia",
        "Australia/Sydney",
        _phone_au,
        (0.30, 0.60, 0.10),
        0.25,
        True,
        ("Olivia", "Jack", "Charlotte", "Noah", "Amelia", "William", "Isla", "Thomas"),
        ("Taylor", "Wilson", "Anderson", "Thompson", "White", "Martin", "Kelly", "Walker"),
        ("Xero", "Mailchimp"),
    ),
)

_LISTS: Final = (
    ("newsletter", "Newsletter"),
    ("vip", "VIP customers"),
    ("black-friday-leads", "Black Friday leads"),
    ("webinar", "Webinar attendees"),
    ("churn-risk", "Churn risk"),
    ("loyalty", "Loyalty club"),
)
_CAMPAIGN_NAMES: Final = (
    "Black Friday",
    "Cyber Monday",
    "Spring Sale",
    "New Collection",
    "Webinar Invite",
    "Loyalty Points",
    "Back to School",
    "Flash Sale",
    "Product Launch",
    "Customer Survey",
    "Free Shipping Week",
    "Anniversary",
)
FLOWS: Final = (
    "flow-welcome",
    "flow-cart-abandonment",
    "flow-birthday",
    "flow-reactivation",
    "flow-order-status",
)
_EMAIL_DOMAINS: Final = ("example.com", "example.net", "example.org", "mail.example")


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    name: str
    channel: str
    send_ms: int


@dataclass(frozen=True, slots=True)
class Org:
    """A tenant: its time zone (where its contacts live), channel mix, lists and campaigns."""

    org_id: str
    name: str
    timezone: str
    zone: ZoneInfo
    domain: str
    channel_mix: MappingProxyType[str, float]
    whatsapp_share: float
    utc_timestamps: bool
    lists: tuple[tuple[str, str], ...]  # (list_id, list_name)
    campaigns: tuple[Campaign, ...]
    origins: tuple[tuple[dict[str, Any], float], ...]  # (origin, weight); every kind of SPEC §2
    template: _OrgTemplate


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact's fixed traits; its history is drawn in ``simulator.timeline``."""

    org: Org
    index: int
    contact_id: str
    persona: Persona
    hour_weights: tuple[float, ...]  # 168, Monday 00:00 local first
    name: str
    phone: str | None
    email: str | None
    channels: MappingProxyType[str, float]  # channel -> weight of the messages sent on it
    created_ms: int
    origin: dict[str, Any]
    deleted: bool


def uuid_from(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``: realistic ids that stay reproducible."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def local_ms(org: Org, local: datetime) -> int:
    """Epoch ms of a naive local wall time in the org's zone."""
    return int(local.replace(tzinfo=org.zone).timestamp() * 1000)


def _org_id(i: int) -> str:
    t = _TEMPLATES[i % len(_TEMPLATES)]
    return t.slug if i < len(_TEMPLATES) else f"{t.slug}-{i // len(_TEMPLATES) + 1}"


def org_timezones(orgs: int) -> dict[str, str]:
    """``org_id -> IANA zone`` of a run with ``orgs`` orgs: the worker's ``EM_ORG_TIMEZONES``.

    Without it the worker puts best send times in UTC, not in the zone the contacts live in.
    """
    return {_org_id(i): _TEMPLATES[i % len(_TEMPLATES)].timezone for i in range(orgs)}


def build_orgs(config: SimConfig) -> tuple[Org, ...]:
    """The orgs of a run: the templates in turn (``acme``, ``globex``, …, then ``acme-2``)."""
    orgs = []
    for i in range(config.orgs):
        t = _TEMPLATES[i % len(_TEMPLATES)]
        org_id = _org_id(i)
        rng = random.Random(f"{config.seed}/org/{org_id}")
        zone = ZoneInfo(t.timezone)
        mix = MappingProxyType(dict(zip(CHANNELS, t.channel_mix, strict=True)))
        campaigns = _campaigns(rng, config, zone, mix)
        lists = tuple((f"lst-{slug}", name) for slug, name in rng.sample(_LISTS, k=4))
        wa_account = f"{t.name} WhatsApp Business"
        origins: tuple[tuple[dict[str, Any], float], ...] = (
            ({"type": "api"}, 0.20),
            ({"type": "csv", "file": rng.choice(("leads.csv", "import-2025.csv"))}, 0.12),
            ({"type": "manual_import"}, 0.08),
            ({"type": "app", "app": t.apps[0]}, 0.08),
            ({"type": "app", "app": t.apps[1]}, 0.04),
            (
                {"type": "app_spec", "app": "Facebook Leads", "spec": f"Page {t.name} - Lead Form"},
                0.10,
            ),
            (
                {"type": "campaign", "campaign": campaigns[0].name, "channel": "whatsapp"},
                0.10,
            ),
            ({"type": "direct", "channel": "whatsapp", "account": wa_account}, 0.10),
            ({"type": "direct", "channel": "webchat"}, 0.05),
            (
                {
                    "type": "chatbot",
                    "channel": "whatsapp",
                    "account": wa_account,
                    "flow": "Qualification Bot",
                },
                0.08,
            ),
            ({"type": "chatbot", "channel": "webchat", "flow": "Welcome Bot"}, 0.05),
        )
        orgs.append(
            Org(
                org_id=org_id,
                name=t.name,
                timezone=t.timezone,
                zone=zone,
                domain=f"{t.slug}.example",
                channel_mix=mix,
                whatsapp_share=t.whatsapp_share,
                utc_timestamps=t.utc_timestamps,
                lists=lists,
                campaigns=campaigns,
                origins=origins,
                template=t,
            )
        )
    return tuple(orgs)


def _campaigns(
    rng: random.Random, config: SimConfig, zone: ZoneInfo, mix: MappingProxyType[str, float]
) -> tuple[Campaign, ...]:
    """Bulk sends: about one every five days, on a weekday at 10:00, 14:00 or 18:00 local."""
    count = max(3, config.days // 5)
    start = config.now - timedelta(days=config.days)
    out = []
    for k in range(count):
        day = start + timedelta(days=rng.uniform(0, config.days))
        local = day.astimezone(zone).replace(
            hour=rng.choice((10, 14, 18)), minute=0, second=0, microsecond=0
        )
        while local.weekday() >= 5:
            local -= timedelta(days=1)
        send_ms = int(local.timestamp() * 1000)
        if send_ms > config.now_ms - HOUR_MS:
            send_ms -= 7 * DAY_MS
        channel = rng.choices(CHANNELS, weights=[mix[c] for c in CHANNELS])[0]
        name = _CAMPAIGN_NAMES[k % len(_CAMPAIGN_NAMES)]
        slug = name.lower().replace(" ", "-")
        out.append(Campaign(f"cmp-{k + 1:04d}-{slug}", name, channel, send_ms))
    return tuple(out)


def _pick_origin(org: Org, index: int, rng: random.Random) -> dict[str, Any]:
    # The first contacts of an org take every origin variant in turn, so even a tiny run shows
    # them all; the rest follow the weights.
    if index < len(org.origins):
        return dict(org.origins[index][0])
    return dict(rng.choices(org.origins, weights=[w for _, w in org.origins])[0][0])


def _pick_persona(index: int, rng: random.Random) -> Persona:
    if index < len(PERSONAS):
        return PERSONAS[index]
    return rng.choices(PERSONAS, weights=[p.population for p in PERSONAS])[0]


def is_deleted(index: int, share: float) -> bool:
    """Every ``1/share``-th contact (from index 17 on) is deleted: rare, but never absent."""
    if share <= 0:
        return False
    period = max(1, round(1 / share))
    return index % period == min(17, period - 1)


def build_contact(org: Org, index: int, config: SimConfig) -> tuple[Contact, random.Random]:
    """A contact and the random stream its history continues from."""
    rng = random.Random(f"{config.seed}/contact/{org.org_id}/{index}")
    t = org.template
    contact_id = uuid_from(rng)
    persona = _pick_persona(index, rng)
    origin = _pick_origin(org, index, rng)
    first, last = rng.choice(t.first_names), rng.choice(t.last_names)
    name = f"{first} {last}"
    webchat_visitor = origin.get("channel") == "webchat"
    has_phone = persona.name == "sms_only" or (not webchat_visitor and rng.random() < 0.93)
    has_email = persona.name != "sms_only" and rng.random() < (0.5 if webchat_visitor else 0.85)
    if webchat_visitor and not has_email:
        name = f"Visitor {rng.randint(1000, 9999)}" if rng.random() < 0.5 else name
    phone = t.phone(rng) if has_phone else None
    email = None
    if has_email:
        local_part = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 999)}"
        email = f"{local_part}@{rng.choice(_EMAIL_DOMAINS)}"
    available: dict[str, float] = {}
    if phone is not None:
        available["sms"] = org.channel_mix["sms"] * persona.channel_affinity["sms"]
        if persona.name != "sms_only" and rng.random() < org.whatsapp_share:
            available["whatsapp"] = (
                org.channel_mix["whatsapp"] * persona.channel_affinity["whatsapp"]
            )
    if email is not None:
        available["email"] = org.channel_mix["email"] * persona.channel_affinity["email"]
    channels = MappingProxyType({c: w for c, w in available.items() if w > 0})
    # 70 % of the base existed before the simulated span, the rest joined during it.
    if rng.random() < 0.7:
        created_ms = config.now_ms - int(rng.uniform(config.days, config.days + 640) * DAY_MS)
    else:
        created_ms = config.now_ms - int(rng.uniform(0.5, config.days) * DAY_MS)
    shift = rng.choice((-1, 0, 0, 0, 1))
    contact = Contact(
        org=org,
        index=index,
        contact_id=contact_id,
        persona=persona,
        hour_weights=persona.hour_of_week_weights(shift),
        name=name,
        phone=phone,
        email=email,
        channels=channels,
        created_ms=created_ms,
        origin=origin,
        deleted=is_deleted(index, config.delete_share),
    )
    return contact, rng


def iter_contacts(config: SimConfig, orgs: tuple[Org, ...]) -> Iterator[tuple[Org, int]]:
    """(org, index) pairs, orgs interleaved, so every chunk of the stream holds every org."""
    for index in range(config.contacts_per_org):
        for org in orgs:
            yield org, index


def personas_of(config: SimConfig) -> dict[tuple[str, str], str]:
    """``(org_id, contact_id) -> persona name`` for a run, to judge figures per persona."""
    orgs = build_orgs(config)
    out: dict[tuple[str, str], str] = {}
    for org, index in iter_contacts(config, orgs):
        contact, _ = build_contact(org, index, config)
        out[(org.org_id, contact.contact_id)] = contact.persona.name
    return out
