"""Follow a Tableau job to its finish code and describe the result as a ``PublishOutcome``.

Every publish and update runs as a job. :class:`JobTracker` polls ``GET jobs/{id}`` with a
growing pause (each poll through the session's call wrapper, so it survives a session expiry)
until the job reports a finish code. A failed job becomes an outcome with ``succeeded=False``
(the caller decides whether to raise :class:`~xero_tableau.tableau.outcome.PublishFailed`); a job
still running after ``poll_timeout`` raises
:class:`~xero_tableau.tableau.outcome.PublishTimeout`, since its result is unknown.

This package must never import dagster.
"""

import time
from collections.abc import Callable
from typing import Any

import tableauserverclient as TSC

from xero_tableau.tableau.outcome import Mode, PublishOutcome, PublishTimeout
from xero_tableau.tableau.session import Meter, TableauSession

__all__ = ["JobTracker"]

#: Finish codes TSC's ``wait_for_job`` accepts as success (0 Success, 3 Completed).
_SUCCESS_CODES = frozenset({0, 3})


class _JobTimeout(Exception):
    """Internal: polling gave up; turned into :class:`PublishTimeout` with an outcome."""


class JobTracker:
    """Polls jobs on one session and turns them, and any other result, into outcomes."""

    def __init__(
        self,
        session: TableauSession,
        *,
        poll_timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.session = session
        self.poll_timeout = poll_timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._sleep = sleep

    def finish(
        self,
        job: TSC.JobItem,
        meter: Meter,
        mode: Mode,
        project: str,
        datasource_name: str,
        datasource_id: str | None,
        **extra: Any,
    ) -> PublishOutcome:
        """Poll the job to its finish code and describe the result (failure included)."""
        try:
            done = self.wait(job)
        except _JobTimeout as timeout:
            outcome = self.outcome(
                meter,
                mode,
                project,
                datasource_name,
                datasource_id=datasource_id,
                job_id=job.id,
                succeeded=False,
                notes=(f"no finish code after {self.poll_timeout:.0f}s",),
                **extra,
            )
            raise PublishTimeout(outcome) from timeout
        notes = tuple(n for n in (done.notes or []) if n)
        notes += tuple(
            str(n.get("text") or n.get("value") or "") for n in (done.status_notes or [])
        )
        return self.outcome(
            meter,
            mode,
            project,
            datasource_name,
            datasource_id=done.datasource_id or datasource_id,
            job_id=done.id,
            finish_code=done.finish_code,
            succeeded=done.finish_code in _SUCCESS_CODES,
            notes=tuple(n for n in notes if n),
            **extra,
        )

    def wait(self, job: TSC.JobItem) -> TSC.JobItem:
        """Poll ``GET jobs/{id}`` with backoff until it reports a finish code.

        Our own loop rather than TSC's ``wait_for_job``: each poll survives a session expiry on
        its own, the sleep is injectable, and a failure becomes an outcome, not an exception."""
        server, job_id = self.session.server, job.id
        delay, slept = self.poll_interval, 0.0
        deadline = time.monotonic() + self.poll_timeout
        while True:
            current = self.session.call(lambda: server.jobs.get_by_id(job_id))
            if current.completed_at is not None or current.finish_code not in (-1, None):
                return current
            if slept >= self.poll_timeout or time.monotonic() >= deadline:
                raise _JobTimeout(job_id)
            self._sleep(delay)
            slept += delay
            delay = min(delay * 1.4, self.max_poll_interval)

    def outcome(
        self,
        meter: Meter,
        mode: Mode,
        project: str,
        datasource_name: str,
        *,
        succeeded: bool,
        datasource_id: str | None = None,
        job_id: str | None = None,
        finish_code: int | None = None,
        notes: tuple[str, ...] = (),
        **extra: Any,
    ) -> PublishOutcome:
        """The outcome of an operation begun at ``meter``: its REST calls, time and sign-ins."""
        by_method = self.session.calls_since(meter)
        return PublishOutcome(
            mode=mode,
            site=self.session.site,
            project=project,
            datasource_name=datasource_name,
            datasource_id=datasource_id,
            job_id=job_id,
            finish_code=finish_code,
            succeeded=succeeded,
            notes=notes,
            duration_seconds=time.monotonic() - meter.started,
            rest_calls=sum(by_method.values()),
            calls_by_method=by_method,
            sign_ins=self.session.sign_ins - meter.sign_ins,
            **extra,
        )
