"""In-memory state of one simulated tenant: ledger, tokens, faults, statistics.

Route handlers reach it through ``request.app.state.sim`` (``get_state``). Modules added later
(the goods-receipt service) keep their own data in ``SimState.extra`` under their name, e.g.
``extra["materials"]``; ``reset()`` calls ``reset()`` on every value there that has one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field, model_validator

from sapsim.config import SimConfig
from sapsim.ledger import Ledger

FaultKind = Literal[
    "status",
    "soap_fault",
    "drop",
    "slow",
    "commit_then_drop",
    "commit_then_status",
    "commit_then_slow",
    "document_with_error",
    "extra_confirmation",
]
FaultTarget = Literal["soap", "odata", "token"]
#: Kinds that change what the SOAP route writes into its confirmation (not the HTTP exchange);
#: the gate hands them to the route in the ASGI scope under ``CONFIRMATION_FAULT_KEY``.
CONFIRMATION_FAULTS = frozenset({"document_with_error", "extra_confirmation"})
CONFIRMATION_FAULT_KEY = "sapsim.confirmation_fault"


class FaultAction(BaseModel):
    """One injected fault, consumed by the next request of its ``target`` (default: SOAP posts).

    * ``status``: answer ``status`` (with ``Retry-After`` if set) without processing.
    * ``soap_fault``: answer a SOAP fault (HTTP 500) without processing.
    * ``drop``: break the connection before processing.
    * ``slow``: wait ``delay_ms``, then process and answer normally.
    * ``commit_then_drop``: process (post), then break the connection mid-response.
    * ``commit_then_status``: process (post), then answer ``status`` instead of the result.
    * ``commit_then_slow``: process (post), then wait ``delay_ms`` before answering.
    * ``document_with_error`` (SOAP only): post, and answer a confirmation that carries the
      AccountingDocument *and* an extra ``Log/Item`` ``009(ZSIM)`` with SeverityCode 3
      (MaximumLogItemSeverityCode 3): the document exists although the log says error.
    * ``extra_confirmation`` (SOAP only): post, and put before the real confirmations one more
      ``JournalEntryCreateConfirmation`` for ReferenceID ``OTHER-REF`` with document
      ``0199999999`` (never in the ledger), so reading only the first confirmation is wrong.
    """

    kind: FaultKind
    status: int = 503
    retry_after: int | None = None
    delay_ms: int = 0
    target: FaultTarget = "soap"

    @model_validator(mode="after")
    def _confirmation_faults_need_soap(self) -> FaultAction:
        """Reject e.g. ``extra_confirmation`` on OData: it would silently do nothing there."""
        if self.kind in CONFIRMATION_FAULTS and self.target != "soap":
            raise ValueError(f"fault kind {self.kind!r} only applies to target 'soap'")
        return self


class FaultUpdate(BaseModel):
    """Body of ``PUT /sim/faults``: only the fields sent change; ``queue`` replaces the queue.

    Standing settings besides the queue (all cleared by ``POST /sim/reset``):

    * ``uppercase_references``: from now on the ledger stores ``DocumentReferenceID`` and
      ``Reference1InDocumentHeader`` upper-cased, as a tenant whose fields are
      ``sap:display-format="UpperCase"`` may; the cube returns them so and ``$filter`` compares
      with the stored value (``eq 'abc'`` misses a document stored as ``ABC``).
    * ``foreign_next_host``: scheme and host (e.g. ``"http://evil.example:9"``) put in every
      OData ``__next`` link (and Atom ``rel="next"``) instead of the simulator's own; path and
      query stay. ``null`` turns it off.
    * ``test_run_posts``: a tenant that ignores ``TestDataIndicator`` and posts a test run.
    * ``metadata_missing``: property names left out of every served ``$metadata``, as on a
      tenant with another version of the API.
    * ``clock_offset_s``: SAP's ``Date`` header this many seconds off the real time.
    * ``soap_basic_only``: the posting service accepts only what its WSDL policy offers (HTTP
      Basic, or a client certificate through an mTLS front), and answers a bearer token 401, as
      a tenant whose SAP_COM_0002 arrangement follows the WSDL does.
    """

    latency_ms: int | None = Field(default=None, ge=0)
    odata_latency_ms: int | None = Field(default=None, ge=0)
    queue: list[FaultAction] | None = None
    down: bool | None = None
    down_retry_after: int | None = None
    revoke_tokens: bool = False
    uppercase_references: bool | None = None
    soap_basic_only: bool | None = None
    test_run_posts: bool | None = None
    metadata_missing: list[str] | None = None
    clock_offset_s: int | None = None
    foreign_next_host: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+/?$",
        examples=["http://evil.example:9"],
    )


@dataclass
class Faults:
    """Current fault settings."""

    latency_ms: int = 0
    odata_latency_ms: int = 0
    down: bool = False
    down_retry_after: int | None = None
    queue: deque[FaultAction] = field(default_factory=deque)
    uppercase_references: bool = False
    soap_basic_only: bool = False
    test_run_posts: bool = False
    metadata_missing: list[str] = field(default_factory=list)
    clock_offset_s: int = 0
    foreign_next_host: str | None = None

    def take(self, target: FaultTarget) -> FaultAction | None:
        """Remove and return the first queued action for ``target``."""
        for action in self.queue:
            if action.target == target:
                self.queue.remove(action)
                return action
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "odata_latency_ms": self.odata_latency_ms,
            "down": self.down,
            "down_retry_after": self.down_retry_after,
            "queue": [a.model_dump() for a in self.queue],
            "uppercase_references": self.uppercase_references,
            "soap_basic_only": self.soap_basic_only,
            "test_run_posts": self.test_run_posts,
            "metadata_missing": self.metadata_missing,
            "clock_offset_s": self.clock_offset_s,
            "foreign_next_host": self.foreign_next_host,
        }


@dataclass
class Stats:
    """Request counters; ``by_route`` is keyed by ``"<METHOD> <route path>"``."""

    token_requests: int = 0
    tokens_issued: int = 0
    soap_posts: int = 0
    soap_documents_posted: int = 0
    soap_documents_rejected: int = 0
    soap_faults: int = 0
    soap_in_flight: int = 0  # posts being answered now, and the most ever at once
    soap_max_in_flight: int = 0
    odata_requests: int = 0
    auth_failures: int = 0
    unavailable: int = 0
    injected_faults: int = 0
    by_route: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "by_route"}
        return {**data, "by_route": dict(self.by_route)}


class SimState:
    """Everything one simulator instance remembers; safe for concurrent requests on one loop."""

    def __init__(self, config: SimConfig, now: Callable[[], datetime] | None = None) -> None:
        self.initial_config = config
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.lock = asyncio.Lock()
        self.extra: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Forget documents, tokens, faults, counters and runtime master-data changes."""
        self.config = self.initial_config.model_copy(deep=True)
        self.ledger = Ledger(self.config, self.now)
        self.tokens: dict[str, float] = {}
        self.faults = Faults(
            latency_ms=self.config.latency_ms, odata_latency_ms=self.config.odata_latency_ms
        )
        self.stats = Stats()
        self.error_log: deque[dict[str, str]] = deque(maxlen=100)
        for module_state in self.extra.values():
            reset = getattr(module_state, "reset", None)
            if callable(reset):
                reset()

    # --- tokens -------------------------------------------------------------------------
    def issue_token(self) -> tuple[str, int]:
        """A new bearer token and its lifetime in seconds."""
        token = secrets.token_urlsafe(32)
        lifetime = self.config.token_lifetime_s
        self.tokens[token] = self.now().timestamp() + lifetime
        self.stats.tokens_issued += 1
        return token, lifetime

    def token_is_valid(self, token: str) -> bool:
        expires_at = self.tokens.get(token)
        return expires_at is not None and self.now().timestamp() < expires_at

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self.tokens.clear()

    # --- faults -------------------------------------------------------------------------
    def update_faults(self, update: FaultUpdate) -> None:
        """Apply ``PUT /sim/faults`` (also usable from Python)."""
        faults = self.faults
        names = ("latency_ms", "odata_latency_ms", "down", "uppercase_references")
        for name in (*names, "soap_basic_only", "test_run_posts", "metadata_missing"):
            value = getattr(update, name)
            if value is not None:
                setattr(faults, name, value)
        if update.clock_offset_s is not None:
            faults.clock_offset_s = update.clock_offset_s
        if "down_retry_after" in update.model_fields_set:
            faults.down_retry_after = update.down_retry_after
        if "foreign_next_host" in update.model_fields_set:
            host = update.foreign_next_host
            faults.foreign_next_host = host.rstrip("/") if host else None
        if update.queue is not None:
            faults.queue = deque(update.queue)
        if update.revoke_tokens:
            self.revoke_tokens()

    def push_fault(self, action: FaultAction | dict[str, Any]) -> None:
        """Queue one fault action."""
        self.faults.queue.append(FaultAction.model_validate(action))


def get_state(request: Request) -> SimState:
    """FastAPI dependency: the state of the simulator serving this request."""
    state: SimState = request.app.state.sim
    return state


StateDep = Annotated[SimState, Depends(get_state)]
