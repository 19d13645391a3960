"""Publish ``.hyper`` extracts to one Tableau site: :class:`TableauPublisher`, the facade.

It composes the session, permissions, jobs, replace, incremental and outcome modules of this
package. Only idempotent calls are ever retried (GETs, ``Overwrite``, an update with the same
request id), so a retry can never double rows.

This package must never import dagster.
"""

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa
import tableauserverclient as TSC

from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.incremental import IncrementalPublisher, PayloadBuilder, find_datasource
from xero_tableau.tableau.jobs import JobTracker
from xero_tableau.tableau.outcome import PublishLedger, PublishOutcome
from xero_tableau.tableau.permissions import PublishPermissions
from xero_tableau.tableau.replace import ReplacePublisher
from xero_tableau.tableau.session import CallCounter, TableauSession

__all__ = ["TableauPublisher"]


class TableauPublisher:
    """Publishes ``.hyper`` files to one Tableau site with one reused, self-healing session.

    Use as a context manager: entering signs in (once), leaving signs out. Not meant for
    concurrent use from several threads (TSC allows it, but the call counts per outcome would
    mix); run one publisher per site."""

    def __init__(
        self,
        server_url: str,
        pat_name: str,
        pat_secret: str,
        site: str,
        *,
        api_version: str = "3.24",
        poll_timeout: float = 1800.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 15.0,
        transient_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        ledger: PublishLedger | None = None,
        hyper: HyperWriter | None = None,
        work_dir: Path | None = None,
    ) -> None:
        """``site`` is the site's content URL; ``api_version`` is used when ``serverInfo`` does
        not answer. ``hyper``: a started writer whose Hyper process builds update payloads
        (default: one started on first need and stopped on exit). ``work_dir``: where payloads
        are staged (default: a temporary folder)."""
        self.session = TableauSession(
            server_url,
            pat_name,
            pat_secret,
            site,
            api_version=api_version,
            transient_retries=transient_retries,
            retry_pause=poll_interval,
            sleep=sleep,
        )
        self.permissions = PublishPermissions(self.session)
        self.jobs = JobTracker(
            self.session,
            poll_timeout=poll_timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            sleep=sleep,
        )
        self.replace = ReplacePublisher(self.session, self.permissions, self.jobs)
        self.payloads = PayloadBuilder(hyper, work_dir)
        self.incremental = IncrementalPublisher(
            self.session, self.permissions, self.jobs, self.replace, self.payloads, ledger
        )

    # -------------------------------------------------------------- session

    def __enter__(self) -> Self:
        self.sign_in()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def sign_in(self) -> None:
        """Pin the REST version (first time) and sign in with the PAT."""
        self.session.sign_in()

    def close(self) -> None:
        """Sign out (a dead session is fine), stop an own Hyper process, drop staged files."""
        self.session.close()
        self.payloads.close()

    @property
    def site(self) -> str:
        """The site's content URL."""
        return self.session.site

    @property
    def server(self) -> TSC.Server:
        """The TSC server this publisher's session uses."""
        return self.session.server

    @property
    def counter(self) -> CallCounter:
        """Every HTTP request made so far, by method."""
        return self.session.counter

    @property
    def sign_ins(self) -> int:
        """How many times the session signed in (1 unless it expired on the way)."""
        return self.session.sign_ins

    @property
    def rest_version(self) -> str:
        """The pinned REST API version."""
        return self.session.rest_version

    @property
    def ledger(self) -> PublishLedger | None:
        """Where incremental batches are remembered (None: nowhere)."""
        return self.incremental.ledger

    # -------------------------------------------------------------- checks and lookups

    def check_can_publish(self, project_name: str) -> TSC.ProjectItem:
        """The project, if it exists and the signed-in user may publish there (else a
        :class:`~xero_tableau.tableau.outcome.PublishPermissionError`). Cached per project."""
        return self.permissions.check_can_publish(project_name)

    def find_datasource(self, datasource_name: str, project_name: str) -> TSC.DatasourceItem | None:
        """The data source of that name in that project, or None."""
        return find_datasource(self.session, datasource_name, project_name)

    # -------------------------------------------------------------- publishing

    def publish_replace(
        self, hyper_path: Path, datasource_name: str, project: str
    ) -> PublishOutcome:
        """Publish the whole extract with ``Overwrite`` (creates the data source if missing,
        keeps its LUID otherwise) as a job, and wait for the job's finish code."""
        return self.replace.publish(hyper_path, datasource_name, project)

    def publish_incremental(
        self,
        changed_hyper_path: Path,
        datasource_name: str,
        project: str,
        table: str,
        key_column: str,
        batch_id: str,
        *,
        full_hyper_path: Path | None = None,
        tenant_column: str | None = "tenant_id",
        removed_keys: pa.Table | None = None,
    ) -> PublishOutcome:
        """Apply one batch of changed and removed documents to the published data source.

        ``changed_hyper_path`` holds ``"Extract"."<table>"`` with every row of every changed
        document (``key_column`` is the document id, e.g. ``invoice_id``). If the data source
        does not exist yet it is created from ``full_hyper_path`` (the full extract, which
        already contains the batch). Otherwise one ``update_hyper_data`` request deletes the
        target rows of those documents and of the documents in ``removed_keys`` (a table of
        ``tenant_column`` and ``key_column``: documents gone since the last publish), matched
        on ``tenant_column`` too when given, and inserts the payload's rows, under a request id
        derived from ``batch_id`` and the SHA-256 of the payload's rows and deleted keys, so
        repeating a batch never doubles rows. A batch with nothing to insert or delete is a
        no-op. Raises
        :class:`~xero_tableau.tableau.outcome.PublishFailed` if the job fails."""
        return self.incremental.publish(
            changed_hyper_path,
            datasource_name,
            project,
            table,
            key_column,
            batch_id,
            full_hyper_path=full_hyper_path,
            tenant_column=tenant_column,
            removed_keys=removed_keys,
        )
