"""The nightly sweep's plan (``xero_tableau.sweep``): all history since the organisation's
creation within the period, each night inside the call budget."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from xero_tableau.sweep import (
    BUDGET_SHARE,
    RECENT_DAYS,
    CallEstimate,
    cycle_slices,
    older_slice,
    plan_sweep,
    recent_window,
)

creations = st.dates(min_value=date(2006, 1, 1), max_value=date(2030, 12, 31))


def _days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def _read_on(night: date, created: date, period: int) -> set[date]:
    read = _days(*recent_window(night, created))
    older = older_slice(night, created, period)
    if older is not None:
        read |= _days(*older)
    return read


@settings(max_examples=400, deadline=None)
@given(
    created=creations,
    age=st.integers(min_value=0, max_value=7000),
    period=st.integers(min_value=1, max_value=60),
)
def test_any_period_consecutive_nights_read_every_day_since_creation(
    created: date, age: int, period: int
) -> None:
    today = created + timedelta(days=age)
    read: set[date] = set()
    for back in range(period):
        read |= _read_on(today - timedelta(days=back), created, period)
    missing = sorted(_days(created, today) - read)
    assert missing == [], (missing[:5], len(missing))


@settings(max_examples=300, deadline=None)
@given(
    created=creations,
    age=st.integers(min_value=0, max_value=7000),
    period=st.integers(min_value=1, max_value=60),
)
def test_a_night_reads_about_one_period_th_of_the_older_history(
    created: date, age: int, period: int
) -> None:
    today = created + timedelta(days=age)
    older = older_slice(today, created, period)
    end = today - timedelta(days=RECENT_DAYS + 1)
    if end < created:
        assert older is None
        return
    if older is None:  # a young history: fewer slices than nights in the cycle
        return
    first, last = older
    assert created <= first <= last <= end
    span = (end - created).days + 1
    # a share of the history as it stood when the cycle began, plus the days added since
    assert (last - first).days + 1 <= -(-span // period) + period


def test_the_recent_window_is_the_last_seven_days_and_today_never_before_creation() -> None:
    today = date(2026, 3, 10)
    assert recent_window(today, date(2020, 1, 1)) == (date(2026, 3, 3), today)
    assert recent_window(today, date(2026, 3, 8)) == (date(2026, 3, 8), today)


def test_calls_are_a_page_per_page_size_documents_plus_one_per_entity() -> None:
    day = date(2026, 1, 10)
    estimate = CallEstimate(
        {"Invoices": {day: 2500, day + timedelta(days=1): 10}, "Payments": {}}, page_size=1000
    )
    assert estimate.documents("Invoices", (day, day)) == 2500
    assert estimate.calls((day, day)) == 3 + 1
    assert estimate.calls((day, day + timedelta(days=1))) == 3 + 1
    assert estimate.calls((day + timedelta(days=5), day + timedelta(days=9))) == 2


@settings(max_examples=60, deadline=None)
@given(
    per_day=st.integers(min_value=1, max_value=5000),
    years=st.integers(min_value=1, max_value=12),
    limit=st.sampled_from([1000, 5000]),
    period=st.integers(min_value=1, max_value=14),
    night=st.integers(min_value=0, max_value=400),
)
def test_a_sweep_that_would_not_fit_the_budget_stretches_its_period_and_says_so(
    per_day: int, years: int, limit: int, period: int, night: int
) -> None:
    today = date(2026, 3, 10) + timedelta(days=night)
    created = today - timedelta(days=365 * years)
    counts = {
        "Invoices": {created + timedelta(days=i): per_day for i in range(365 * years + 1)},
        "Payments": {created + timedelta(days=i): per_day // 3 for i in range(365 * years + 1)},
    }
    estimate = CallEstimate(counts, page_size=100)
    plan = plan_sweep("t", today, created, period, estimate, limit)
    budget = int(limit * BUDGET_SHARE)
    assert plan.budget == budget
    assert plan.period >= period
    recent = estimate.calls(plan.recent)
    slices = cycle_slices(today, created, plan.period)
    heaviest = max((estimate.calls(s) for s in slices), default=0)
    if "over budget" in plan.note:  # only when even a day a night does not fit
        assert recent + heaviest > budget
        assert all(a == b for a, b in slices[:-1])
        return
    assert recent + heaviest <= budget
    if plan.period > period:
        assert f"from {period} to {plan.period} nights" in plan.note
    else:
        assert plan.note == ""
        assert plan.calls <= budget


def test_a_small_organisation_is_swept_in_the_configured_period_with_no_note() -> None:
    today = date(2026, 3, 10)
    created = date(2024, 3, 1)
    counts = {"Invoices": {created + timedelta(days=i): 20 for i in range(740)}}
    plan = plan_sweep("t", today, created, 7, CallEstimate(counts, 1000), 5000)
    assert (plan.period, plan.note) == (7, "")
    assert plan.older is not None and plan.older[0] >= created
