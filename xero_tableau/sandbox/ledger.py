"""STUB, for the reports branch only: the merge takes the general-ledger engineer's ledger.py.

The real module derives every general-ledger journal of a tenant from its documents, in Xero's
Journal JSON shape (JournalID, JournalDate, JournalNumber, CreatedDateUTC, SourceID, SourceType,
JournalLines with AccountID, AccountCode, AccountType, AccountName, NetAmount, TaxAmount,
GrossAmount, TaxType and TrackingCategories), in JournalNumber order. This stub keeps only the
signature so the sandbox's report routes (``reports.py``) import and run; with it every report is
empty. Nothing else belongs in this file.
"""

from xero_tableau.sandbox.dataset import TenantData


def journals(tenant: TenantData) -> list[dict]:
    """Every journal of ``tenant`` in JournalNumber order (stub: none)."""
    return []
