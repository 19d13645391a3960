"""Drive ``tenant_publish`` table by table against the Tableau sandbox (real TSC over HTTP).

A :class:`Harness` writes a table state (rows of a small ``fct_invoice_lines``) to parquet and
to its full ``.hyper``, as the tables and extracts assets do, publishes it with
``publish_table_incremental`` or ``publish_table_replace``, and reads the data source back from
the sandbox's storage, so a test compares what Tableau holds with the last state, row for row.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from xero_tableau.publish_ledger import DbPublishLedger
from xero_tableau.sandbox.credentials import (
    TABLEAU_DEMO_PAT_NAME,
    TABLEAU_DEMO_PAT_SECRET,
    TABLEAU_DEMO_SITE,
)
from xero_tableau.sandbox.tableau_app import RunningTableauSandbox
from xero_tableau.tableau.hyper import HyperWriter
from xero_tableau.tableau.publish import TableauPublisher
from xero_tableau.tableau.routing import Route
from xero_tableau.tenant_publish import (
    PublishTarget,
    TablePublish,
    publish_table_incremental,
    publish_table_replace,
)

TABLE = "fct_invoice_lines"
TENANT = "tenant-1"
SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("invoice_id", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("line_amount", pa.decimal128(18, 2)),
        pa.field("contact_name", pa.string()),
        pa.field("fetched_at_utc", pa.timestamp("ms", tz="UTC")),
    ]
)
#: (invoice_id, line_number, line_amount, contact_name): one line of the table.
Line = tuple[str, int, Decimal, str]
COMPARED = ["tenant_id", "invoice_id", "line_number", "line_amount", "contact_name"]


def lines_table(lines: Sequence[Line], fetched: datetime) -> pa.Table:
    rows = sorted(lines)
    return pa.table(
        {
            "tenant_id": pa.array([TENANT] * len(rows), pa.string()),
            "invoice_id": pa.array([r[0] for r in rows], pa.string()),
            "line_number": pa.array([r[1] for r in rows], pa.int32()),
            "line_amount": pa.array([r[2] for r in rows], pa.decimal128(18, 2)),
            "contact_name": pa.array([r[3] for r in rows], pa.string()),
            "fetched_at_utc": pa.array([fetched] * len(rows), pa.timestamp("ms", tz="UTC")),
        },
        schema=SCHEMA,
    )


@dataclass
class Harness:
    """One data source (``<prefix>fct_invoice_lines``) published from a folder of its own."""

    tableau: RunningTableauSandbox
    writer: HyperWriter
    engine: Engine
    work: Path
    prefix: str = "t_"
    reads: int = 0  # each publish is a new read of the lines: fetched_at_utc moves

    @property
    def route(self) -> Route:
        return Route(TABLEAU_DEMO_SITE, "Xero", self.prefix, None)

    @property
    def name(self) -> str:
        return self.route.datasource_name(TABLE)

    @property
    def fingerprints(self) -> Path:
        return self.work / "published" / f"{TABLE}.fingerprints.parquet"

    def publisher(self, **kw: object) -> TableauPublisher:
        kw.setdefault("sleep", lambda _: None)
        return TableauPublisher(
            self.tableau.base_url,
            TABLEAU_DEMO_PAT_NAME,
            TABLEAU_DEMO_PAT_SECRET,
            TABLEAU_DEMO_SITE,
            hyper=self.writer,
            ledger=DbPublishLedger(self.engine),
            work_dir=self.work / "staging",
            **kw,  # type: ignore[arg-type]
        )

    def write(self, lines: Sequence[Line], *, reread: bool = True) -> tuple[Path, Path]:
        """The state's parquet and full .hyper, as the tables and extracts assets write them."""
        if reread:
            self.reads += 1
        fetched = datetime(2025, 1, 1, tzinfo=UTC).replace(second=self.reads % 60)
        current = self.work / "tables" / f"{TABLE}.parquet"
        full = self.work / "hyper" / f"{TABLE}.hyper"
        current.parent.mkdir(parents=True, exist_ok=True)
        full.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(lines_table(lines, fetched), current)
        self.writer.write_table(current, full, TABLE, schema=SCHEMA)
        return current, full

    def publish(
        self,
        lines: Sequence[Line],
        *,
        mode: str = "incremental",
        reread: bool = True,
        publisher: TableauPublisher | None = None,
    ) -> TablePublish:
        current, full = self.write(lines, reread=reread)
        own = publisher is None
        pub = self.publisher() if publisher is None else publisher
        try:
            if own:
                pub.sign_in()
            target = PublishTarget(
                pub,
                self.writer,
                DbPublishLedger(self.engine),
                TENANT,
                self.route,
                self.work / "published",
            )
            if mode == "replace":
                return publish_table_replace(target, TABLE, current, full)
            return publish_table_incremental(target, TABLE, current, full)
        finally:
            if own:
                pub.close()

    def stored(self) -> list[Line]:
        """What the data source holds now, read from the sandbox's storage."""
        path = self.tableau.sandbox.datasource_path(TABLEAU_DEMO_SITE, self.name)
        table = self.writer.read_table(path, TABLE, order_by=COMPARED)
        assert set(table.column("tenant_id").to_pylist()) <= {TENANT}
        return [
            (r["invoice_id"], r["line_number"], r["line_amount"], r["contact_name"])
            for r in table.to_pylist()
        ]

    def updates(self) -> int:
        """``update_hyper_data`` requests the sandbox has received so far."""
        return self.tableau.sandbox.requests_log["PATCH /sites/{site}/datasources/{ds}/data"]
