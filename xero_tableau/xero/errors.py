"""What can go wrong talking to Xero, as exceptions that say what to do about it."""


class XeroError(Exception):
    """Base class of every Xero API failure."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ReconsentRequired(XeroError):
    """The refresh token is dead (invalid_grant) or the app was disconnected: a person must consent
    again."""


class XeroAuthError(XeroError):
    """401 after a refresh: the access token is not accepted."""


class XeroForbidden(XeroError):
    """403: the tenant is disconnected, the tenant id is wrong, or a scope is missing."""


class XeroNotFound(XeroError):
    """404: no such resource (also Xero's answer to an over-long IDs list)."""


class XeroValidationError(XeroError):
    """400: Xero refused the request; ``messages`` holds Xero's own validation messages."""

    def __init__(self, message: str, messages: list[str], *, status: int = 400) -> None:
        super().__init__(message, status=status)
        self.messages = messages


class XeroRateLimited(XeroError):
    """429: a rate limit was hit; ``retry_after`` seconds until it lifts, ``problem`` names it."""

    def __init__(self, message: str, *, retry_after: float, problem: str | None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after
        self.problem = problem


class XeroUnavailable(XeroError):
    """503 or another server-side failure that is worth retrying later."""
