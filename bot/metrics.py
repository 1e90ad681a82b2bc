"""Prometheus metrics (prometheus-client), served at ``/metrics``.

One registry per process-wide instance of tocsin; names are part of the documented interface.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

CHECKS = Counter(
    "tocsin_checks_total",
    "Source checks (one per page read or probe call) by the worst status they saw",
    ["provider", "source", "result"],
    registry=REGISTRY,
)
CHECK_LATENCY = Histogram(
    "tocsin_check_latency_seconds",
    "Time one source check took",
    ["source_kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
EVENTS = Counter("tocsin_events_total", "Events written to the stream", ["type"], registry=REGISTRY)
DELIVERIES = Counter(
    "tocsin_deliveries_total",
    "Deliveries by target kind and result",
    ["target", "result"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "tocsin_delivery_retries_total", "Delivery retries", ["target"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "tocsin_dead_letters_total", "Deliveries that failed for good", ["target"], registry=REGISTRY
)
BUFFERED = Gauge(
    "tocsin_buffered_updates",
    "State updates held in memory while the store is unreachable",
    registry=REGISTRY,
)
BUFFER_DROPPED = Counter(
    "tocsin_buffer_dropped_total",
    "Buffered updates dropped because events alone overflowed the buffer (store away long)",
    registry=REGISTRY,
)
LEADER = Gauge(
    "tocsin_watcher_leader", "1 when this replica holds the watcher lease", registry=REGISTRY
)
STORE_UP = Gauge("tocsin_store_up", "1 when the store answers", registry=REGISTRY)
HOOKS = Counter(
    "tocsin_hooks_total",
    "Status page pushes received, by result (accepted, unauthorized, bad_request, ...)",
    ["result"],
    registry=REGISTRY,
)
POLLS_REQUESTED = Counter(
    "tocsin_pushed_polls_total",
    "Status page reads the watcher ran early because a push asked for them",
    ["provider"],
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "tocsin_escalations_total",
    "Pages decided by escalation policies, by policy and action (trigger, repeat, resolve)",
    ["policy", "action"],
    registry=REGISTRY,
)
ESCALATOR_LEADER = Gauge(
    "tocsin_escalator_leader",
    "1 when this replica holds the escalator lease (decides pages)",
    registry=REGISTRY,
)
SOURCES_OWNED = Gauge(
    "tocsin_sources_owned",
    "Sources this replica checks (all of them on the leader; its share with sharding)",
    registry=REGISTRY,
)
SOURCES_OWNED_PROVIDERS = Gauge(
    "tocsin_shard_providers_owned",
    "Providers whose shard lease this replica holds (watch.sharding)",
    registry=REGISTRY,
)
HISTORY_LEADER = Gauge(
    "tocsin_history_leader",
    "1 when this replica holds the history lease (records days and episodes)",
    registry=REGISTRY,
)
PENDING_ESCALATIONS = Gauge(
    "tocsin_pending_escalations",
    "Escalations waiting for their delay or paged and not yet resolved",
    registry=REGISTRY,
)
SIGNALS = Counter(
    "tocsin_signals_total",
    "Apps' reported calls (signals and OTLP spans) by result (accepted, rejected)",
    ["result"],
    registry=REGISTRY,
)
SIGNAL_BATCHES = Counter(
    "tocsin_signal_batches_total",
    "Signal batches by endpoint (signals, otlp) and result (accepted, unauthorized, "
    "rate_limited, too_large, bad_request, ...)",
    ["endpoint", "result"],
    registry=REGISTRY,
)
SIGNALS_RATE_LIMITED = Counter(
    "tocsin_signals_rate_limited_total",
    "Signal batches refused (429) because their token sent more than signals.rate",
    ["token"],
    registry=REGISTRY,
)
