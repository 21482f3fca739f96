"""Prometheus metrics (prometheus_client), served only on TOBIRA_METRICS_LISTEN, a port of its own
that the public never reaches: sign-ins by method and outcome, the passkey ceremonies' latency,
refusals by error code (rate limits among them), and the outbox's depth and age.

With several workers, each writes its counts to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode, chosen when that variable is set before it is imported: `tobira serve` sets it
for its workers) and the serving process adds them up. The outbox is read from the database at
each scrape, so it is one number whatever the process count.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from . import store_outbox
from .db import Database

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

SIGN_INS = Counter("tobira_sign_ins", "Sign-ins, by method (passkey, email_code, trusted_device, password) "
                   "and outcome (ok, failed)", ["method", "outcome"])
CEREMONY_SECONDS = Histogram("tobira_ceremony_seconds", "Time to answer a passkey verification, by ceremony "
                             "(login, step_up, registration)", ["ceremony"],
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
REFUSALS = Counter("tobira_refusals", "Requests refused, by error code (rate_limited among them)", ["code"])


class _Outbox:
    """The queued mail, read at scrape time: how many wait, and how long the oldest has."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.database, self.clock = database, clock

    def collect(self):
        count, oldest = self.database.run_sync(store_outbox.unsent_summary)
        depth = GaugeMetricFamily("tobira_outbox_depth", "Mails queued and not yet sent")
        depth.add_metric([], count)
        age = GaugeMetricFamily("tobira_outbox_oldest_seconds", "Age of the oldest unsent mail (0: none)")
        age.add_metric([], (self.clock() - oldest).total_seconds() if oldest else 0.0)
        return [depth, age]


def prepare_workers(data_dir: Path) -> Path:
    """A fresh directory for the workers' counts, named in the environment they inherit."""
    directory = data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # counts of a previous run are not this run's
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def serve(listen: tuple[str, int], database: Database, clock: Callable[[], datetime], *,
          multiprocess_dir: Path | None) -> None:
    """Start the metrics endpoint (a thread of this process): this process's counts, or with
    multiprocess_dir the workers' added up; and the outbox."""
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        from prometheus_client import REGISTRY as registry
    registry.register(_Outbox(database, clock))
    start_http_server(listen[1], addr=listen[0], registry=registry)
