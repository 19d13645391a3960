"""Replace mode: publish a whole ``.hyper`` extract with ``Overwrite``, as a job.

``Overwrite`` creates the data source if it is missing and keeps its LUID otherwise, and the
same file published twice gives the same data source, so it is safe to retry after a
re-sign-in. ``Append`` and ``CreateNew`` are never used: a retried Append doubles rows, a retried
CreateNew fails with 409. The permission check runs before the upload; the job is followed to
its finish code, and a failure raises :class:`~xero_tableau.tableau.outcome.PublishFailed`
unless the caller asks for the outcome instead.

This package must never import dagster.
"""

from pathlib import Path

import tableauserverclient as TSC

from xero_tableau.tableau.jobs import JobTracker
from xero_tableau.tableau.outcome import Mode, PublishFailed, PublishOutcome
from xero_tableau.tableau.permissions import PublishPermissions
from xero_tableau.tableau.session import Meter, TableauSession

__all__ = ["ReplacePublisher"]


class ReplacePublisher:
    """Publishes full extracts with ``Overwrite`` on one session."""

    def __init__(
        self, session: TableauSession, permissions: PublishPermissions, jobs: JobTracker
    ) -> None:
        self.session = session
        self.permissions = permissions
        self.jobs = jobs

    def publish(self, hyper_path: Path, datasource_name: str, project: str) -> PublishOutcome:
        """Publish the whole extract with ``Overwrite`` (creates the data source if missing,
        keeps its LUID otherwise) as a job, and wait for the job's finish code."""
        meter = self.session.meter()
        project_item = self.permissions.check_can_publish(project)
        return self.overwrite(Path(hyper_path), datasource_name, project_item, "replace", meter)

    def overwrite(
        self,
        hyper_path: Path,
        datasource_name: str,
        project: TSC.ProjectItem,
        mode: Mode,
        meter: Meter,
        *,
        batch_id: str | None = None,
        raise_on_failure: bool = True,
    ) -> PublishOutcome:
        """Upload ``hyper_path`` over the data source as a job and follow it to its end.

        ``mode`` names the outcome (``replace``, or ``create`` for an incremental data source's
        first publish); the project must already have passed the permission check."""
        if not hyper_path.is_file():
            raise FileNotFoundError(f"extract to publish not found: {hyper_path}")
        server = self.session.server
        item = TSC.DatasourceItem(project.id, name=datasource_name)
        job = self.session.call(
            lambda: server.datasources.publish(
                item, str(hyper_path), TSC.Server.PublishMode.Overwrite, as_job=True
            )
        )
        outcome = self.jobs.finish(
            job, meter, mode, project.name or "", datasource_name, None, batch_id=batch_id
        )
        if raise_on_failure and not outcome.succeeded:
            raise PublishFailed(outcome)
        return outcome
