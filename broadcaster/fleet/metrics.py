"""Prometheus metrics, computed from the database at each scrape (nothing drifts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..services import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class LoaCollector(Collector):
    def __init__(self, s: Services, province: str | None = None) -> None:
        self.s = s
        self.province = province

    def collect(self) -> Iterator[Metric]:
        q = self.s.store.query
        online = GaugeMetricFamily(
            "loa_speakers_online", "speakers online now", labels=["commune", "hamlet"]
        )
        total = GaugeMetricFamily(
            "loa_speakers", "speakers registered", labels=["commune", "hamlet"]
        )
        for r in q(
            "SELECT commune_id, hamlet_id, SUM(online) AS up, COUNT(*) AS n FROM devices"
            " WHERE ? IS NULL OR commune_id IN (SELECT id FROM communes WHERE province_id=?)"
            " GROUP BY commune_id, hamlet_id",
            [self.province, self.province],
        ):
            online.add_metric([r["commune_id"], r["hamlet_id"]], r["up"] or 0)
            total.add_metric([r["commune_id"], r["hamlet_id"]], r["n"])
        yield online
        yield total
        broadcasts = CounterMetricFamily(
            "loa_broadcasts", "broadcasts by kind and status", labels=["kind", "status"]
        )
        for r in q("SELECT kind, status, COUNT(*) AS n FROM broadcasts GROUP BY kind, status"):
            broadcasts.add_metric([r["kind"] or "media", r["status"]], r["n"])
        yield broadcasts
        late = CounterMetricFamily("loa_late_frames", "frames speakers received too late")
        refused = CounterMetricFamily("loa_refused_frames", "frames speakers refused")
        late_n = refused_n = 0
        for r in q("SELECT payload FROM telemetry_last"):
            counters = json.loads(r["payload"]).get("counters", {})
            late_n += counters.get("late", 0)
            refused_n += counters.get("refused", 0)
        late.add_metric([], late_n)
        refused.add_metric([], refused_n)
        yield late
        yield refused
        yield self._latency()
        drops = CounterMetricFamily(
            "loa_ingest_dropped", "device messages dropped at ingest", labels=["source"]
        )
        for who, n in self.s.router.dropped.items():
            drops.add_metric([who], n)
        yield drops
        alarms = GaugeMetricFamily("loa_alarms_open", "alarms open now", labels=["kind"])
        for r in q("SELECT kind, COUNT(*) AS n FROM alarms WHERE cleared_us IS NULL GROUP BY kind"):
            alarms.add_metric([r["kind"]], r["n"])
        yield alarms
        commands = CounterMetricFamily(
            "loa_commands", "device commands by result", labels=["status"]
        )
        for r in q("SELECT status, COUNT(*) AS n FROM commands GROUP BY status"):
            commands.add_metric([r["status"]], r["n"])
        yield commands
        busy = CounterMetricFamily(
            "loa_logins_refused_busy", "logins turned away (429) while password checks were busy"
        )
        busy.add_metric([], self.s.accounts.hashing.refused)
        yield busy
        yield from self._loop_lag()
        yield from self._store_sync()

    def _store_sync(self) -> Iterator[Metric]:
        syncer = self.s.store.syncer
        if syncer is None:
            return
        syncs = CounterMetricFamily("loa_store_syncs", "fsyncs of the store's WAL (group commit)")
        syncs.add_metric([], syncer.syncs)
        yield syncs
        errors = CounterMetricFamily("loa_store_sync_errors", "failed fsyncs or checkpoints")
        errors.add_metric([], syncer.errors)
        yield errors
        durable = GaugeMetricFamily(
            "loa_store_durable", "1 while every commit reaches the disk (0 after a failed fsync)"
        )
        durable.add_metric([], int(syncer.healthy))
        yield durable
        age = syncer.age_s()
        if age is not None:
            since = GaugeMetricFamily(
                "loa_store_synced_age_seconds", "since every commit was last known on the disk"
            )
            since.add_metric([], age)
            yield since

    def _loop_lag(self) -> Iterator[Metric]:
        lag = self.s.loop_lag
        h = HistogramMetricFamily(
            "loa_event_loop_lag_seconds",
            "how late the controller's event loop wakes from a short sleep (measured always)",
        )
        h.add_metric([], lag.cumulative(), sum_value=lag.total_s)
        yield h
        worst = GaugeMetricFamily(
            "loa_event_loop_lag_max_seconds", "the largest event-loop lag since start"
        )
        worst.add_metric([], lag.max_s)
        yield worst

    def _latency(self) -> Metric:
        """Alert → sound, per speaker: first played time − when the alert was confirmed."""
        rows = self.s.store.query(
            "SELECT (d.started_us - b.created_us) / 1e6 AS s FROM deliveries d"
            " JOIN broadcasts b ON b.id = d.broadcast_id"
            " JOIN alert_broadcasts ab ON ab.broadcast_id = b.id"
            " WHERE d.outcome IN ('played', 'partial') AND d.started_us IS NOT NULL"
        )
        values = [r["s"] for r in rows if r["s"] is not None]
        buckets = [(str(b), sum(1 for v in values if v <= b)) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(values)))
        h = HistogramMetricFamily(
            "loa_alert_latency_seconds", "from an alert's broadcast to sound, per speaker"
        )
        h.add_metric([], buckets, sum_value=sum(values))
        return h


def render(s: Services, province: str | None = None) -> tuple[bytes, str]:
    """The metrics; with ``province``, speakers of that province only."""
    registry = CollectorRegistry()
    registry.register(LoaCollector(s, province))
    return generate_latest(registry), CONTENT_TYPE
