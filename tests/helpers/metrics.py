"""Reading GET /metrics as Prometheus does: samples by name and labels, and their changes."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(text: str) -> dict[Key, float]:
    """Every `relatch_*` sample of a scrape, keyed by name and sorted labels."""
    found: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("relatch_"):
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[Key, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def counter_changes(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    """The counters (`*_total`) that moved, and by how much; the scrapes themselves (the
    `metrics` operation) left out."""
    moved: dict[Key, float] = {}
    for key in before.keys() | after.keys():
        name, labels = key
        if not name.endswith("_total") or ("operation", "metrics") in labels:
            continue
        change = after.get(key, 0.0) - before.get(key, 0.0)
        if change:
            moved[key] = change
    return moved


def key(name: str, **labels: Any) -> Key:
    return (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
