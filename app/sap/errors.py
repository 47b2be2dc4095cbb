"""How a SAP call can fail, split by what the caller may do next.

What the evidence of a SOAP posting proves is one table, ``client._posting_failure``:

* ``SapRetryableError``: nothing was sent (connect error or timeout, a TLS failure before the
  request, PoolTimeout, no free call slot, circuit open), or SAP said "not now" (HTTP 429; HTTP
  503 with any body, the web dispatcher's HTML "Service Unavailable" page included): safe to
  send again later.
* ``SapAmbiguousError``: the request may have been processed: a read timeout or connection lost
  after sending (ReadTimeout, ReadError, RemoteProtocolError, WriteError, WriteTimeout), HTTP
  502, 504, a 500 without a SOAP body or any other 5xx, a SOAP Fault, an unreadable answer, no
  confirmation for the message sent, or a document number logged with severity 3. Read SAP back
  before any re-send of a posting.
* ``SapRejectedError``: SAP refused the request on business grounds (severity 3 with no
  document, a blank or zero AccountingDocument) or as sent (3xx, other 4xx); retrying cannot
  help until the cause is fixed. Carries SAP's own log messages.
* ``SapConfigurationError``: the bridge's SAP settings are incomplete or refused (401/403), or
  an OData service is not reachable for this user (404: communication arrangement missing).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.platform.errors import AppError


@dataclass(frozen=True)
class SapMessage:
    """One entry of SAP's log: ``TypeID`` like ``702(F5)``, severity 1-4 and the note."""

    type_id: str
    severity: int
    note: str

    def as_dict(self) -> dict[str, str | int]:
        return {"type_id": self.type_id, "severity": self.severity, "note": self.note}


class SapError(AppError):
    """Base of every failure talking to SAP."""

    status_code = 502


class SapRetryableError(SapError):
    """SAP did not process the request; sending it again later is safe."""

    status_code = 503

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SapAmbiguousError(SapRetryableError):
    """SAP may have processed the request; read back before re-sending a posting."""


class SapRejectedError(SapError):
    """SAP refused the request on business grounds, with its log messages."""

    def __init__(self, detail: str, messages: list[SapMessage] | None = None) -> None:
        super().__init__(detail)
        self.messages = messages or []


class SapConfigurationError(SapError):
    """The SAP settings are incomplete, or SAP refused the bridge's credentials."""
