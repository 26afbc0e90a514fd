"""Scenario names and titles: a leaf module, so `engagement-monitor --help` stays import-light."""

from __future__ import annotations

SCENARIOS: tuple[str, ...] = (
    "empty",
    "raw",
    "pipeline",
    "naive",
    "quixstreams",
    "kstreams",
    "latency",
    "latency_high",
    "api",
    "api_high",
    "footprint",
    "recovery",
    "failover",
    "webhooks",
)
TITLES: dict[str, str] = {
    "empty": "0 empty Faust agent",
    "raw": "1 raw aiokafka loop",
    "pipeline": "2 pipeline (engagement-monitor worker)",
    "naive": "3 naive Faust (hopping windows)",
    "quixstreams": "3b quixstreams peer",
    "kstreams": "3c Kafka Streams peer",
    "latency": "4 event -> snapshot latency",
    "latency_high": "4b event -> snapshot latency, high rate",
    "api": "5 API snapshot GET latency",
    "api_high": "5b API snapshot GET latency, high rate",
    "footprint": "6 bytes per contact",
    "recovery": "7 recovery of a restarted worker",
    "failover": "7b fail-over to a standby",
    "webhooks": "8 provider webhooks into Kafka",
}
