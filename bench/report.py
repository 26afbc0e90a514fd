"""Turn a result document into a rich table, a JSON file and a BENCHMARKS.md section.

One list of rows feeds both the terminal table and the Markdown table, so what is printed and
what is recorded can never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.names import TITLES

Row = tuple[str, str, str, str]  # scenario, figure, value, note


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN
        return "-"
    if isinstance(value, int | float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
        return f"{text} {unit}".strip()
    return str(value)


def _ratio(value: float | None, what: str) -> str:
    return f"{value:.3g}x {what}" if value else ""


def rows(doc: dict[str, Any]) -> list[Row]:
    s = doc["scenarios"]
    r = doc.get("ratios", {})
    out: list[Row] = []

    def status_row(name: str) -> bool:
        status = str(s[name].get("status", ""))
        if status in ("ok", "partial", "incomplete", "errors", "lost probes"):
            return False
        out.append((TITLES[name], "status", status, ""))
        return True

    for name in ("empty", "raw", "pipeline", "naive", "quixstreams", "kstreams"):
        if name not in s:
            continue
        if status_row(name):
            continue
        item = s[name]
        note = ""
        if name == "pipeline":
            note = "  ".join(
                x
                for x in (
                    _ratio(r.get("pipeline_over_raw"), "raw"),
                    _ratio(r.get("pipeline_over_naive"), "naive"),
                    _ratio(r.get("pipeline_over_empty"), "empty agent"),
                    _ratio(r.get("pipeline_over_quixstreams"), "quixstreams"),
                    _ratio(r.get("pipeline_over_kstreams"), "Kafka Streams"),
                )
                if x
            )
        if item.get("status") != "ok":
            note = (note + "  " + str(item.get("note", item.get("status")))).strip()
        if item.get("events_per_cpu_second"):
            # The process tree's CPU over the drain (ingest processes included).
            per_cpu = f"{_num(item['events_per_cpu_second'])} ev per CPU-s"
            note = f"{note}  {per_cpu}".strip()
        out.append((TITLES[name], "events/s", _num(item.get("events_per_second")), note))
        if name == "pipeline" and item.get("seconds_to_inputs_framed") is not None:
            out.append(
                (
                    TITLES[name],
                    "stages",
                    f"{_num(item.get('seconds_to_inputs_framed'))} s / "
                    f"{_num(item.get('seconds_to_drained'))} s",
                    "ingest lag gone / envelope lag gone (since start); max envelope lag "
                    f"{_num(item.get('max_envelope_lag'))} envelopes",
                )
            )
        if name == "pipeline" and "exact" in item:
            exact = item["exact"]
            verdict = "PASSED" if exact.get("passed") else "FAILED"
            out.append(
                (
                    TITLES[name],
                    "exactness",
                    verdict,
                    f"{exact.get('checked')} contacts, every figure vs reference, "
                    f"{exact.get('mismatches')} mismatches",
                )
            )
    for name in ("latency", "latency_high"):
        if name not in s or status_row(name):
            continue
        item = s[name]
        rate = f"at {_num(item.get('offered_events_per_second'))} ev/s offered"
        for p in ("p50", "p95", "p99"):
            out.append((TITLES[name], p, _num(item.get(f"{p}_ms"), "ms"), rate))
            rate = ""
        out[-1] = (
            *out[-1][:3],
            f"{item.get('probes_seen')}/{item.get('probes')} probes, "
            f"achieved {_num(item.get('achieved_events_per_second'))} ev/s",
        )
        warm = item.get("warmup")
        if isinstance(warm, dict) and warm.get("probes"):
            out.append(
                (
                    TITLES[name],
                    "warm-up p99",
                    _num(warm.get("p99_ms"), "ms"),
                    f"the {_num(warm.get('seconds'))} s before, not in the figures above "
                    f"(p50 {_num(warm.get('p50_ms'), 'ms')}, {warm.get('probes')} probes)",
                )
            )
    for name in ("api", "api_high"):
        if name not in s or status_row(name):
            continue
        item = s[name]
        note = (
            f"at {_num(item.get('offered_rps'))} rps offered, "
            f"{item.get('api_processes', 1)} API process(es)"
        )
        out.append((TITLES[name], "p50", _num(item.get("p50_ms"), "ms"), note))
        out.append(
            (
                TITLES[name],
                "p99",
                _num(item.get("p99_ms"), "ms"),
                f"{item.get('ok')}/{item.get('requests')} ok, "
                f"achieved {_num(item.get('achieved_rps'))} rps",
            )
        )
    if not status_row("footprint"):
        item = s["footprint"]
        out.append(
            (
                TITLES["footprint"],
                "Redis bytes / contact",
                _num(item.get("redis_bytes_per_contact"), "B"),
                f"snapshot {_num(item.get('redis_snapshot_bytes'), 'B')} "
                f"(stored {_num(item.get('redis_snapshot_stored_bytes'), 'B')} of JSON "
                f"{_num(item.get('redis_snapshot_json_bytes'), 'B')}), membership "
                f"{_num(item.get('redis_membership_bytes'), 'B')}, history "
                f"{_num(item.get('redis_history_bytes'), 'B')}, segments "
                f"{_num(item.get('redis_segment_bytes_per_contact'), 'B')}, org indexes "
                f"{_num(item.get('redis_index_bytes_per_contact'), 'B')} "
                f"{item.get('redis_index_bytes_by_kind') or ''}",
            )
        )
        out.append(
            (
                TITLES["footprint"],
                "table bytes / contact",
                _num(item.get("table_value_bytes"), "B"),
                f"value; key {_num(item.get('table_key_bytes'), 'B')}, RocksDB on disk "
                f"{_num(item.get('table_disk_bytes_per_contact'), 'B')}/contact "
                f"({_num(item.get('table_contacts'))} contacts)",
            )
        )
    if not status_row("recovery"):
        item = s["recovery"]
        n = _num(item.get("contacts"))
        out.append(
            (
                TITLES["recovery"],
                "store intact",
                _num(item.get("store_intact_seconds"), "s"),
                f"{n} contacts, process start -> /healthz 200",
            )
        )
        out.append(
            (
                TITLES["recovery"],
                "store wiped",
                _num(item.get("store_wiped_seconds"), "s"),
                "changelog loaded in bulk, then Faust's recovery "
                f"({_num(item.get('changelog_records'))} records)",
            )
        )
    if "failover" in s and not status_row("failover"):
        item = s["failover"]
        out.append(
            (
                TITLES["failover"],
                "fail-over",
                _num(item.get("failover_seconds"), "s"),
                f"longest event -> snapshot of {item.get('probes_after_kill')} probes after a "
                f"kill -9 ({item.get('probes_lost')} lost); standby replicas 1, session "
                f"timeout {item.get('session_timeout_seconds')} s; p50 "
                f"{_num(item.get('p50_ms_after_kill'), 'ms')}",
            )
        )
    if not status_row("webhooks"):
        item = s["webhooks"]
        out.append(
            (
                TITLES["webhooks"],
                "events/s",
                _num(item.get("events_per_second")),
                f"{_num(item.get('events'))} SendGrid events in batches of {item.get('batch')}, "
                f"{item.get('concurrency')} in flight; request p50 {_num(item.get('p50_ms'), 'ms')}"
                f", p99 {_num(item.get('p99_ms'), 'ms')}; {item.get('statuses')}",
            )
        )
    return out


def print_table(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=None if Console().is_terminal else 160)
    b = doc.get("backlog", {})
    title = (
        f"Engagement Monitor benchmark {doc['date']} @ {doc['commit']}"
        f"{' (dirty)' if doc.get('dirty') else ''}"
    )
    table = Table(title=title, show_lines=False)
    for col in ("scenario", "figure", "value", "note"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for row in rows(doc):
        table.add_row(*row)
    console.print(table)
    if b:
        console.print(
            f"backlog: {b['events']:,} events, {b['contacts_touched']:,} contacts, "
            f"{b['messages']:,} messages, {b['duplicates']:,} duplicates, "
            f"{b['keyless']:,} keyless, {b['partitions']} partitions; "
            f"total {doc['total_seconds']} s"
        )


def markdown_section(doc: dict[str, Any], json_path: Path | None) -> str:
    m = doc["machine"]
    b = doc.get("backlog", {})
    cfg = doc["config"]
    dirty = " (uncommitted changes)" if doc["dirty"] else ""
    lines = [
        f"## {doc['date']} — commit `{doc['commit']}`{dirty} — preset `{cfg['preset']}`",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}; load average at start {m['load_average_at_start']}",
    ]
    if "hot_modules" in m:
        lines.append(f"- hot modules: {m['hot_modules']}")
    if b:
        lines.append(
            f"- backlog: {b['events']:,} events ({b['duplicates']:,} duplicates, "
            f"{b['keyless']:,} keyless) over {b['contacts_touched']:,} contacts in {b['orgs']} "
            f"orgs, {b['messages']:,} messages, {b['partitions']} partitions"
        )
    lines.append(f"- total run time {doc['total_seconds']} s")
    if json_path is not None:
        lines.append(f"- figures: `{json_path.as_posix()}`")
    lines += ["", "| scenario | figure | value | note |", "|---|---|---:|---|"]
    for row in rows(doc):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines.append("")
    return "\n".join(lines)


def record(doc: dict[str, Any], benchmarks: Path, json_path: Path | None, notes: str = "") -> None:
    """Append this run to BENCHMARKS.md (created with a header when missing)."""
    if not benchmarks.exists():
        benchmarks.write_text("# Benchmarks\n\nRuns of `make bench`, newest last.\n\n")
    section = markdown_section(doc, json_path)
    if notes:
        section += "\n" + notes.strip() + "\n"
    with benchmarks.open("a") as out:
        out.write("\n" + section)
