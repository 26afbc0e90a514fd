"""A realistic, deterministic event stream for Engagement Monitor (SPEC §2), and its producer.

``generate`` is pure (a seed in, records out) so tests and ``--dry-run`` need no broker;
``simulator.produce`` is the only module that talks to Kafka.
"""

from simulator.config import KINDS, RecordKind, SimConfig, SimRecord
from simulator.malformed import MALFORMED_CODES
from simulator.personas import PERSONAS, Persona
from simulator.stream import generate
from simulator.world import build_orgs, org_timezones, personas_of

__all__ = [
    "KINDS",
    "MALFORMED_CODES",
    "PERSONAS",
    "Persona",
    "RecordKind",
    "SimConfig",
    "SimRecord",
    "build_orgs",
    "generate",
    "org_timezones",
    "personas_of",
]
