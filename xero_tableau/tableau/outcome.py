"""What a publish produces and what it can raise: shared by every publishing module.

- :class:`PublishOutcome` describes one publish or update (mode, job, finish code, REST calls).
- :class:`BatchRecord` is the state of one incremental batch, kept behind the small
  :class:`PublishLedger` protocol between calls; :class:`InMemoryPublishLedger` is enough for one
  process and for tests (``xero_tableau.publish_ledger`` keeps the same records in the state DB).
- :class:`PublishError` and its subclasses: a :class:`PublishFailed` carries the outcome, so the
  caller keeps its batch pending and retries it.

This package must never import dagster.
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

__all__ = [
    "FINISH_CODE_NAMES",
    "BatchRecord",
    "InMemoryPublishLedger",
    "Mode",
    "PublishError",
    "PublishFailed",
    "PublishLedger",
    "PublishOutcome",
    "PublishPermissionError",
    "PublishTimeout",
]

Mode = Literal["replace", "create", "incremental", "noop"]
#: Tableau job finish codes by number.
FINISH_CODE_NAMES = {0: "success", 1: "failed", 2: "cancelled", 3: "completed"}


@dataclass(frozen=True)
class PublishOutcome:
    """What one publish or update did, for asset metadata, ledgers and benchmarks.

    ``rest_calls`` counts every HTTP request the operation made (sign-ins and permission checks
    included when they happened during it); ``calls_by_method`` splits them by HTTP method."""

    mode: Mode
    site: str
    project: str
    datasource_name: str
    datasource_id: str | None
    job_id: str | None
    finish_code: int | None
    succeeded: bool
    notes: tuple[str, ...] = ()
    duration_seconds: float = 0.0
    rest_calls: int = 0
    calls_by_method: Mapping[str, int] = field(default_factory=dict)
    request_id: str | None = None
    batch_id: str | None = None
    rows_sent: int | None = None
    sign_ins: int = 0


# ------------------------------------------------------------------------------------ errors


class PublishError(RuntimeError):
    """Publishing could not be done; nothing is known to have changed unless the message says."""


class PublishPermissionError(PublishError):
    """The signed-in user may not publish to the project (raised before any data is sent)."""

    def __init__(self, site: str, project: str, missing: str) -> None:
        self.site = site
        self.project = project
        self.missing = missing
        super().__init__(
            f"cannot publish to project {project!r} on Tableau site {site or '(Default)'!r}: "
            f"{missing}"
        )


class PublishFailed(PublishError):
    """A publish or update job did not succeed; ``outcome`` holds its finish code and notes.

    The server discarded the job's changes (an update batch is all-or-nothing), so the caller
    keeps the batch pending and may retry it with the same batch id."""

    def __init__(self, outcome: PublishOutcome) -> None:
        self.outcome = outcome
        notes = "; ".join(outcome.notes) or "no notes from the server"
        code = outcome.finish_code
        super().__init__(
            f"{outcome.mode} of data source {outcome.datasource_name!r} failed: job "
            f"{outcome.job_id} finished with code {outcome.finish_code} "
            f"({FINISH_CODE_NAMES.get(-1 if code is None else code, 'unknown')}): {notes}"
        )


class PublishTimeout(PublishFailed):
    """The job did not report completion within ``poll_timeout``; its result is unknown.

    Retrying with the same batch id is still safe (Overwrite, or the same ``request_id``)."""


# ------------------------------------------------------------------------------------ ledger


@dataclass(frozen=True)
class BatchRecord:
    """The publish state of one incremental batch.

    ``request_id`` is the batch's deterministic base id; ``failures`` counts jobs that ended
    with a definite failure (finish code 1 or 2). Tableau discards a failed batch entirely, so
    after a *confirmed* failure the retry may use a fresh id (``<base>-r<failures>``): a server
    that remembers failed request ids would otherwise answer every retry with the old failed
    job. A timeout is not a confirmed failure and keeps the same id."""

    batch_id: str
    request_id: str
    datasource_name: str
    status: Literal["pending", "succeeded", "failed"]
    job_id: str | None = None
    finish_code: int | None = None
    notes: tuple[str, ...] = ()
    failures: int = 0
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class PublishLedger(Protocol):
    """Where batch states are kept between calls (in memory, or the state DB)."""

    def get(self, batch_id: str) -> BatchRecord | None:
        """The batch's last record, or None if it was never attempted."""
        ...

    def put(self, record: BatchRecord) -> None:
        """Store (replace) the batch's record."""
        ...


class InMemoryPublishLedger:
    """A :class:`PublishLedger` in a dict: enough for one process and for tests."""

    def __init__(self) -> None:
        self._records: dict[str, BatchRecord] = {}
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> BatchRecord | None:
        with self._lock:
            return self._records.get(batch_id)

    def put(self, record: BatchRecord) -> None:
        with self._lock:
            self._records[record.batch_id] = record

    def records(self) -> list[BatchRecord]:
        """Every record, oldest batch first."""
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.updated_at)
