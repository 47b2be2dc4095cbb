"""`SapClient`: the one long-lived HTTP client for every call to SAP."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from app.config import credentials
from app.config.credentials import Service
from app.config.service import BridgeConfig
from app.platform.logging import get_logger, request_id_var, sap_seconds_var
from app.sap import metrics, odata
from app.sap.auth import OAuthClientCredentials
from app.sap.circuit import HALF_OPEN, CircuitBreaker
from app.sap.errors import (
    SapAmbiguousError,
    SapConfigurationError,
    SapError,
    SapRejectedError,
    SapRetryableError,
)
from app.sap.journal_entry import (
    CONTENT_TYPE,
    SERVICE_PATH,
    SOAP_ACTION,
    JournalEntry,
    PostingResult,
    build_request,
    parse_confirmation,
)
from app.sap.retry import RetryAfterWait
from app.sap.slots import ClusterSlots

_log = get_logger("app.sap")
CUBE_PATH = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"


#: the communication arrangement that exposes each OData service the bridge reads
ARRANGEMENTS = {
    "API_OPLACCTGDOCITEMCUBE_SRV": "SAP_COM_0303",
    "API_MATERIAL_DOCUMENT_SRV": "SAP_COM_0108",
}
LINE_FIELDS = (
    "CompanyCode,FiscalYear,AccountingDocument,AccountingDocumentItem,DocumentReferenceID,"
    "FinancialAccountType,GLAccount,Customer,DebitCreditCode,AmountInTransactionCurrency,"
    "TransactionCurrency,IsReversal,IsReversed,ReverseDocument"
)
_LINE_ORDER = "CompanyCode,FiscalYear,AccountingDocument,AccountingDocumentItem"


@dataclass(frozen=True)
class FoundLine:
    """One line item of a journal entry SAP holds."""

    account: str  # the customer for a customer line (FinancialAccountType "D"), else GLAccount
    account_type: str  # "D" customer line, "S" G/L line (as FinancialAccountType gives it)
    debit_credit: str  # "S" debit, "H" credit (DebitCreditCode)
    amount: Decimal  # AmountInTransactionCurrency as SAP gives it (debit > 0, credit < 0)
    currency: str  # TransactionCurrency


@dataclass(frozen=True)
class FoundDocument:
    """A journal entry SAP holds, with its lines, to compare with what the bridge sent."""

    company_code: str
    fiscal_year: str
    accounting_document: str
    reference_id: str  # DocumentReferenceID as SAP holds it
    lines: tuple[FoundLine, ...]  # in AccountingDocumentItem order
    is_reversal: bool  # IsReversal on any line
    is_reversed: bool  # IsReversed on any line (or ReverseDocument set on a non-reversal)


class SendWatch(Protocol):
    """Told when a posting has waited `WAIT_NOTICE_SECONDS` for a call slot, and just before it
    goes out after such a wait: what SAP cannot have yet, the caller can say it does not have
    (`billing.delivery`)."""

    async def waiting(self) -> None: ...

    async def sending(self) -> None: ...


#: shorter waits for a call slot (the turn-taking of a busy outbox, about one SAP call) are
#: not reported: a report costs two writes, one of them just before the send, so it is made
#: only where it costs little beside the wait itself
WAIT_NOTICE_SECONDS = 0.5


@dataclass
class _Waits:
    """One call's waits for a slot, reported to its watch once they last long enough."""

    watch: SendWatch | None
    _notice: asyncio.Task[None] | None = None
    _noticed: bool = False

    def start(self) -> None:
        if self.watch is not None and self._notice is None:
            self._notice = asyncio.create_task(self._report(self.watch))

    async def _report(self, watch: SendWatch) -> None:
        await asyncio.sleep(WAIT_NOTICE_SECONDS)
        self._noticed = True
        await watch.waiting()

    async def before_send(self) -> None:
        notice, self._notice = self._notice, None
        if notice is None or self.watch is None:
            return
        if not self._noticed:  # a short wait: nothing was reported, nothing to take back
            notice.cancel()
            return
        await notice  # the wait's mark is written first, so the send's mark comes last
        await self.watch.sending()

    def end(self) -> None:
        """The call ends (sent or not): a report not yet due is never made."""
        if self._notice is not None and not self._noticed:
            self._notice.cancel()


@dataclass(frozen=True)
class _Channel:
    """How one SAP service is called: the HTTP client (one with the client certificate for
    `certificate`) and the auth that goes with each request (none for `certificate`)."""

    method: str
    http: httpx.AsyncClient
    auth: httpx.Auth | None


@dataclass
class _Connection:
    key: tuple[Any, ...]
    base_url: str
    channels: dict[Service, _Channel]
    limit: asyncio.Semaphore
    max_calls: int
    timeout: float


class SapClient:
    """Typed calls to SAP with auth, a concurrency cap, timeouts and error mapping.

    The cap (`Max Concurrent Calls`) is a semaphore in this process and, given `slots`,
    also holds across every replica of the PostgreSQL database.

    The connection settings follow the business config: a changed URL, credential, timeout
    or concurrency cap builds a new auth and semaphore; the HTTP client itself lives on (a
    client certificate needs a client of its own, rebuilt when the certificate changes). Each
    service authenticates by its own method (`BridgeConfig.auth_method`).
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
        slots: ClusterSlots | None = None,
    ) -> None:
        self._transport = transport
        self._http = self._client()
        self._certificate_http: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._conn: _Connection | None = None
        self.breaker = breaker or CircuitBreaker()
        self._slots = slots
        self.token_fetches = 0
        self.calls: Counter[str] = Counter()
        #: the turn waits of calls that may be shed, cut short when a call fails
        self._sheddable: set[asyncio.Timeout] = set()

    def _client(self, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            verify=verify,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._certificate_http is not None:
            await self._certificate_http.aclose()
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._slots is not None:
            await self._slots.aclose()

    async def post_journal_entry(
        self,
        config: BridgeConfig,
        entry: JournalEntry,
        *,
        shed_when_failing: bool = False,
        request: bytes | None = None,
        watch: SendWatch | None = None,
        test_run: bool = False,
    ) -> PostingResult:
        """Post one journal entry through the synchronous SOAP service.

        Raises SapRejectedError (SAP's business errors), SapAmbiguousError (may have posted:
        read back first), SapRetryableError (not posted) or SapConfigurationError, as the
        evidence says (`_posting_failure`); only the confirmation answering the entry's
        `message_id` counts. With `shed_when_failing` (a caller
        is waiting for the answer) the entry is not sent, and SapRetryableError raised, when
        the last call failed and no call slot is free: queueing behind a SAP that is going
        down only makes the caller wait for the same failure. `request` is the SOAP request of
        `entry` when the caller has already built it; `watch` hears of waits for a call slot.
        """
        conn = self._connection(config)
        body = request or build_request(
            entry, now=datetime.now(UTC), message_uuid=str(uuid.uuid4()), test_run=test_run
        )
        headers = {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{SOAP_ACTION}"'}
        response = await self._send(
            conn,
            "POST",
            conn.base_url + SERVICE_PATH,
            "journal_entry.post",
            content=body,
            headers=headers,
            shed_when_failing=shed_when_failing,
            watch=watch,
            service="posting",
        )
        kind = _posting_failure(response)
        if kind is None:
            return parse_confirmation(response.content, message_id=entry.message_id)
        if kind is SapConfigurationError:
            raise _posting_refused(response.status_code, conn.channels["posting"].method)
        raise _status_error(response, kind)

    def token_state(self) -> str | None:
        """How the last OAuth token fetch ended, if a service uses OAuth and one was made."""
        for channel in self._conn.channels.values() if self._conn else ():
            if isinstance(channel.auth, OAuthClientCredentials):
                return channel.auth.last_fetch
        return None

    async def fetch_token(self, config: BridgeConfig) -> None:
        """Obtain the OAuth token the services use (SapError when SAP refuses it)."""
        for channel in self._connection(config).channels.values():
            if isinstance(channel.auth, OAuthClientCredentials):
                await channel.auth.token()
                return

    async def probe(self, config: BridgeConfig, path: str, *, service: Service) -> httpx.Response:
        """One GET of `path` as `service` calls SAP (its auth), whatever the status: for the
        preflight, which judges the answer itself."""
        conn = self._connection(config)
        return await self._send(conn, "GET", conn.base_url + path, "preflight", service=service)

    async def find_journal_entries(
        self, config: BridgeConfig, company_code: str, reference: str
    ) -> list[FoundDocument]:
        """Journal entries SAP holds with this DocumentReferenceID, with their lines, oldest
        first. SAP may hold the reference upper-cased (``sap:display-format="UpperCase"``), so
        a reference that is not all upper case is looked up in both spellings."""
        spellings = [odata.literal(r) for r in dict.fromkeys([reference, reference.upper()])]
        match = " or ".join(f"DocumentReferenceID eq {s}" for s in spellings)
        flt = f"CompanyCode eq {odata.literal(company_code)} and " + (
            f"({match})" if len(spellings) > 1 else match
        )
        return await self._documents(config, flt, "journal_entry.read_back")

    async def get_journal_entry(
        self, config: BridgeConfig, company_code: str, fiscal_year: str, accounting_document: str
    ) -> FoundDocument | None:
        """The journal entry with these keys, with its lines; None when SAP holds none."""
        number = accounting_document.strip()
        number = number.zfill(10) if number.isdigit() else number  # as SAP stores it
        flt = (
            f"CompanyCode eq {odata.literal(company_code)} and "
            f"FiscalYear eq {odata.literal(fiscal_year)} and "
            f"AccountingDocument eq {odata.literal(number)}"
        )
        documents = await self._documents(config, flt, "journal_entry.get")
        return documents[0] if documents else None

    async def _documents(
        self, config: BridgeConfig, flt: str, operation: str
    ) -> list[FoundDocument]:
        params = {"$filter": flt, "$select": LINE_FIELDS, "$orderby": _LINE_ORDER}
        rows = await self.get_all(config, CUBE_PATH, params, operation=operation)
        try:
            return _group_documents(rows)
        except (KeyError, TypeError, ValueError) as exc:
            raise SapError(
                f"unreadable journal entry item from SAP ({type(exc).__name__}: {exc})"
            ) from None

    async def get_all(
        self,
        config: BridgeConfig,
        path: str,
        params: dict[str, Any],
        *,
        operation: str,
        page_size: int = 1000,
    ) -> list[dict[str, Any]]:
        """Every row of an OData V2 collection, following `__next` until it is absent.

        `__next` is always fetched from the configured Base URL (`odata.rebase_next`), never
        from a host SAP names: the SAP credentials go nowhere else."""
        rows: list[dict[str, Any]] = []
        url: str | None = f"{path}?{odata.query({**params, '$top': page_size, '$format': 'json'})}"
        while url is not None:
            page = odata.parse_page(await self.get_json(config, url, operation=operation))
            rows.extend(page.results)
            url = odata.rebase_next(page.next_url, path) if page.next_url else None
        return rows

    async def get_json(self, config: BridgeConfig, url: str, *, operation: str) -> dict[str, Any]:
        """GET an OData resource (path or absolute URL); transient failures retried inline."""
        conn = self._connection(config)
        if url.startswith("/"):
            url = conn.base_url + url
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(SapRetryableError),
            stop=stop_after_attempt(3),
            wait=RetryAfterWait(initial=0.5, maximum=10),
            reraise=True,
        ):
            with attempt:
                response = await self._send(
                    conn, "GET", url, operation, headers={"Accept": "application/json"}
                )
                if response.status_code != 200:
                    raise _read_error(response)
                try:
                    payload: dict[str, Any] = response.json()
                except ValueError:
                    raise SapRetryableError(f"SAP sent unreadable JSON for {operation}") from None
        return payload

    def _connection(self, config: BridgeConfig) -> _Connection:
        missing = config.missing_for_sap()
        if missing:
            raise SapConfigurationError("SAP configuration incomplete: set " + ", ".join(missing))
        key = (
            config.get("Base URL"),
            config.auth_method("posting"),
            config.auth_method("read"),
            config.token_url,
            config.get("Client ID"),
            config.get("Client Secret"),
            config.get("Client Certificate"),
            config.get("Client Certificate Key"),
            config.get("Timeout Seconds"),
            config.get("Max Concurrent Calls"),
        )
        if self._conn is None or self._conn.key != key:
            self._conn = self._build_connection(config, key)
        return self._conn

    def _build_connection(self, config: BridgeConfig, key: tuple[Any, ...]) -> _Connection:
        methods: dict[Service, str] = {
            "posting": config.auth_method("posting"),
            "read": config.auth_method("read"),
        }
        oauth: OAuthClientCredentials | None = None  # one token for both services
        presenting: httpx.AsyncClient | None = None  # one certificate client for both
        channels: dict[Service, _Channel] = {}
        for service, method in methods.items():
            if method == "certificate":
                presenting = presenting or self._with_certificate(config)
                channels[service] = _Channel(method, presenting, None)
                continue
            client_id, secret = config.require("Client ID"), config.require("Client Secret")
            auth: httpx.Auth
            if method == "basic":
                auth = httpx.BasicAuth(client_id, secret)
            else:
                oauth = oauth or OAuthClientCredentials(
                    self._http,
                    config.token_url,
                    client_id,
                    secret,
                    on_fetch=self._count_token_fetch,
                )
                auth = oauth
            channels[service] = _Channel(method, self._http, auth)
        return _Connection(
            key,
            config.require("Base URL"),
            channels,
            asyncio.Semaphore(config.integer("Max Concurrent Calls")),
            config.integer("Max Concurrent Calls"),
            float(config.integer("Timeout Seconds")),
        )

    def _with_certificate(self, config: BridgeConfig) -> httpx.AsyncClient:
        """A client presenting the configured certificate; the previous one is closed."""
        try:
            context = credentials.ssl_context(
                config.require("Client Certificate"), config.require("Client Certificate Key")
            )
        except (credentials.CertificateError, ssl.SSLError) as exc:
            raise SapConfigurationError(
                f"the Client Certificate cannot be used ({exc}); save a certificate and its key"
            ) from None
        expiry = credentials.expires_at(config.require("Client Certificate"))
        metrics.SAP_CLIENT_CERTIFICATE_EXPIRY.set(expiry.timestamp())
        previous, self._certificate_http = self._certificate_http, self._client(context)
        if previous is not None:
            task = asyncio.create_task(previous.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return self._certificate_http

    def _count_token_fetch(self) -> None:
        self.token_fetches += 1
        _log.info("sap.token.fetch")

    async def _send(
        self,
        conn: _Connection,
        method: str,
        url: str,
        operation: str,
        shed_when_failing: bool = False,
        watch: SendWatch | None = None,
        service: Service = "read",
        **kwargs: Any,
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if request_id := request_id_var.get():
            headers["X-Request-ID"] = request_id
        started = time.perf_counter()
        try:
            channel = conn.channels[service]
            return await self._send_limited(
                conn,
                channel,
                method,
                url,
                operation,
                headers,
                kwargs,
                shed_when_failing,
                _Waits(watch),
            )
        finally:
            if (spent := sap_seconds_var.get()) is not None:
                spent.append(time.perf_counter() - started)

    async def _send_limited(
        self,
        conn: _Connection,
        channel: _Channel,
        method: str,
        url: str,
        operation: str,
        headers: dict[str, str],
        kwargs: dict[str, Any],
        shed: bool,
        waits: _Waits,
    ) -> httpx.Response:
        """Wait for a turn (bounded by the SAP timeout; nothing is sent if it runs out), ask the
        circuit breaker, then hold a cluster-wide slot for the call."""
        deadline = asyncio.get_running_loop().time() + conn.timeout
        try:
            await self._local_turn(conn, operation, deadline, shed, waits)
            try:
                if not self.breaker.allow():
                    raise self._circuit_open(operation)
                probe = self.breaker.state == HALF_OPEN
                try:
                    turn = await self._cluster_turn(conn, operation, deadline, probe, shed, waits)
                    async with turn:
                        await waits.before_send()
                        return await self._call(
                            conn, channel, method, url, operation, headers, kwargs
                        )
                except BaseException:
                    if probe:  # the probe never reached SAP: let the next call probe
                        self.breaker.abandon()
                    raise
            finally:
                conn.limit.release()
        finally:
            waits.end()

    async def _local_turn(
        self,
        conn: _Connection,
        operation: str,
        deadline: float,
        shed: bool,
        waits: _Waits | None = None,
    ) -> None:
        """This process's share of the cap, waited for until `deadline`; a call that may be
        shed does not wait once a call has failed, and stops waiting when one fails."""
        if conn.limit.locked():
            if shed and self.breaker.failing():
                raise self._shed(conn, operation)
            if waits is not None:
                waits.start()
        try:
            async with asyncio.timeout_at(deadline) as wait:
                if shed:
                    self._sheddable.add(wait)
                try:
                    await conn.limit.acquire()
                finally:
                    self._sheddable.discard(wait)
        except TimeoutError:
            if shed and self.breaker.failing():
                raise self._shed(conn, operation) from None
            raise _no_turn(conn) from None

    def _record(self, success: bool) -> None:
        """Tell the breaker; a failure ends the waits of calls that may be shed."""
        self.breaker.record(success)
        if not success and self._sheddable:
            now = asyncio.get_running_loop().time()
            for wait in self._sheddable:
                if not wait.expired():  # an expiring one is being cancelled already
                    wait.reschedule(now)

    async def _cluster_turn(
        self,
        conn: _Connection,
        operation: str,
        deadline: float,
        probe: bool,
        shed: bool,
        waits: _Waits,
    ) -> contextlib.AbstractAsyncContextManager[object]:
        """A slot shared with the other replicas (none to take on SQLite), waited for until
        `deadline`; a call that is not a probe is dropped if the circuit opens meanwhile, and
        one that may be shed is not queued once a call has failed."""
        if self._slots is None:
            return contextlib.nullcontext()
        if shed and self.breaker.failing():
            if slot := await self._slots.try_take(conn.max_calls):
                return slot
            raise self._shed(conn, operation)

        def unwanted() -> bool:
            return not probe and (self.breaker.refusing() or (shed and self.breaker.failing()))

        try:
            async with asyncio.timeout_at(deadline):
                slot = await self._slots.take(conn.max_calls, give_up=unwanted, on_wait=waits.start)
        except TimeoutError:
            raise _no_turn(conn) from None
        if slot is None:  # not sent: the circuit opened, or a call failed, while this one waited
            if self.breaker.refusing():
                raise self._circuit_open(operation)
            raise self._shed(conn, operation)
        return slot

    def _shed(self, conn: _Connection, operation: str) -> SapRetryableError:
        metrics.SAP_REQUEST_DURATION.labels(operation, "shed").observe(0)
        return SapRetryableError(
            f"SAP failed the last call and all {conn.max_calls} call slots are busy; "
            "nothing was sent, the bridge retries in the background"
        )

    def _circuit_open(self, operation: str) -> SapRetryableError:
        metrics.SAP_REQUEST_DURATION.labels(operation, "circuit_open").observe(0)
        return SapRetryableError(
            "SAP circuit is open after repeated failures; the bridge will probe again shortly",
            retry_after=self.breaker.retry_after(),
        )

    async def _call(
        self,
        conn: _Connection,
        channel: _Channel,
        method: str,
        url: str,
        operation: str,
        headers: dict[str, str],
        kwargs: dict[str, Any],
    ) -> httpx.Response:
        timeout = httpx.Timeout(conn.timeout, connect=min(conn.timeout, 10.0))
        self.calls[operation] += 1
        started, outcome = time.perf_counter(), "error"
        try:
            async with asyncio.timeout(conn.timeout + 1):
                response = await channel.http.request(
                    method,
                    url,
                    headers=headers,
                    auth=channel.auth or httpx.USE_CLIENT_DEFAULT,
                    timeout=timeout,
                    **kwargs,
                )
            outcome = str(response.status_code)
        except (httpx.RequestError, TimeoutError) as exc:
            self._record(False)
            if refusal := _certificate_refused(exc, channel):
                outcome = "certificate_refused"
                raise SapConfigurationError(
                    f"SAP's TLS refused the bridge's client certificate ({refusal}); nothing "
                    f"was sent. {channel.method} is the method for this service: check Client "
                    "Certificate, and that the communication user in SAP has this certificate"
                ) from None
            if _posting_failure(exc) is SapRetryableError:
                outcome = "unreachable"
                raise SapRetryableError(
                    f"SAP is unreachable ({type(exc).__name__}); nothing was sent"
                ) from None
            outcome = "timeout"
            raise SapAmbiguousError(
                f"no complete answer from SAP within {conn.timeout:g}s ({type(exc).__name__})"
            ) from None
        except SapRetryableError:  # the token endpoint is part of SAP's health
            outcome = "token_error"
            self._record(False)
            raise
        finally:
            metrics.SAP_REQUEST_DURATION.labels(operation, outcome).observe(
                time.perf_counter() - started
            )
        self._record(response.status_code < 500 and response.status_code != 429)
        _log.info("sap.call", operation=operation, status=response.status_code)
        return response


#: TLS alerts a server sends about the client's certificate, before any request is read
_CERTIFICATE_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
)


def _certificate_refused(exc: BaseException, channel: _Channel) -> str | None:
    """Why the server refused the client certificate, if it did: its TLS alert, or (with a
    certificate presented) a handshake it ended without one. Either comes before any request
    is written: the certificate channel negotiates TLS 1.2 (`credentials.ssl_context`)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for error in chain:
        text = str(error).upper().replace(" ", "_")
        for alert in _CERTIFICATE_ALERTS:
            if f"ALERT_{alert}" in text:
                return alert.lower().replace("_", " ")
    if channel.method != "certificate" or not isinstance(exc, httpx.ConnectError):
        return None
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            return None  # the bridge refused SAP's certificate, not the other way round
        if isinstance(error, ssl.SSLError):
            return f"the TLS handshake ended after the certificate was presented: {error}"
    return None


def _no_turn(conn: _Connection) -> SapRetryableError:
    return SapRetryableError(
        f"all {conn.max_calls} SAP call slots (Max Concurrent Calls) stayed busy for "
        f"{conn.timeout:g}s; nothing was sent"
    )


def _posting_failure(evidence: httpx.Response | Exception) -> type[SapError] | None:
    """What a SOAP posting's outcome proves, row by row; None: read SAP's confirmation.
    (The transport rows class every call's failures; OData reads map statuses in `_read_error`.)

    - connect error/timeout (TLS handshake included): no request reached SAP → retryable
    - PoolTimeout: no connection came free, nothing was sent → retryable
    - read/write timeout or error, connection lost mid-answer: sent, answer lost → ambiguous
    - any other transport failure, an undecodable answer: cannot tell → ambiguous
    - 401/403: SAP refused the credentials before processing anything → configuration
    - 429: SAP's rate limit, the request was not taken → retryable
    - 503, any body (the web dispatcher's HTML page too): nothing was processed → retryable
    - 200/500 with a SOAP envelope: SAP's own answer (a SOAP Fault stays ambiguous) → None
    - 502, 504, 500 without SOAP, other 5xx: SAP may have posted behind it → ambiguous
    - other 2xx, or 200 without SOAP: an unreadable answer → ambiguous
    - 3xx, other 4xx: SAP refused the request as sent → rejected
    """
    match evidence:
        case httpx.ConnectError() | httpx.ConnectTimeout() | httpx.PoolTimeout():
            return SapRetryableError
        case httpx.ReadTimeout() | httpx.WriteTimeout() | httpx.ReadError() | httpx.WriteError():
            return SapAmbiguousError
        case Exception():  # RemoteProtocolError, DecodingError, the overall TimeoutError, …
            return SapAmbiguousError
        case httpx.Response(status_code=401 | 403):
            return SapConfigurationError
        case httpx.Response(status_code=429 | 503):
            return SapRetryableError
        case httpx.Response(status_code=200 | 500) if b"Envelope" in evidence.content[:4096]:
            return None
        case httpx.Response(status_code=status) if status >= 500 or 200 <= status < 300:
            return SapAmbiguousError
        case _:
            return SapRejectedError


def _read_error(response: httpx.Response) -> SapError:
    """An OData read that did not answer 200: 401/403/404 are configuration (a 404 is a
    service this user cannot reach, never "no document"), 429 and 5xx are retried."""
    status = response.status_code
    if status == 404:
        return _unreachable_service(response)
    if status in (401, 403):
        return _status_error(response, SapConfigurationError)
    if status == 429 or status >= 500:
        return _status_error(response, SapRetryableError)
    return _status_error(response, SapRejectedError)


def _unreachable_service(response: httpx.Response) -> SapConfigurationError:
    path = response.request.url.path
    service = path.split("/sap/opu/odata/sap/", 1)[-1].split("/", 1)[0] if path else ""
    service = service or "the OData service"
    arrangement = ARRANGEMENTS.get(service, "the communication arrangement")
    return SapConfigurationError(
        f"SAP service {service} is not reachable for this user (HTTP 404): communication "
        f"arrangement {arrangement} for {service} missing? SAP said: "
        + odata.parse_error(404, response.content)
    )


def _posting_refused(status: int, method: str) -> SapConfigurationError:
    why = (
        "not assigned to the communication arrangement"
        if status == 403
        else "not accepted for this communication user"
    )
    hint = (
        "; the posting service's WSDL policy offers Basic or a client certificate, not OAuth: "
        "set Posting Auth Method to basic or certificate"
        if method == "oauth" and status == 401
        else ""
    )
    return SapConfigurationError(
        f"SAP refused the posting (HTTP {status}): the {method} credentials are {why} "
        f"(SAP_COM_0002){hint}"
    )


def _status_error(response: httpx.Response, kind: type[SapError]) -> SapError:
    """The error of `kind` for an HTTP answer, with SAP's own message and Retry-After."""
    status = response.status_code
    message = odata.parse_error(status, response.content)
    if kind is SapConfigurationError:
        return SapConfigurationError(
            f"SAP refused the bridge's credentials (HTTP {status}): "
            "check the communication arrangement and user"
        )
    if kind is SapRejectedError:
        return SapRejectedError(f"SAP refused the request (HTTP {status}): {message}")
    retry_after = _retry_after(response)
    if status == 429:
        return SapRetryableError(
            f"SAP is rate-limiting (HTTP 429): {message}", retry_after=retry_after
        )
    if kind is SapRetryableError:
        return SapRetryableError(
            f"SAP is unavailable (HTTP {status}), nothing was processed: {message}"
            if status == 503
            else f"SAP answered HTTP {status}: {message}",
            retry_after=retry_after,
        )
    if status < 300:
        return SapAmbiguousError(
            f"unreadable answer from SAP (HTTP {status} without a SOAP envelope): {message}"
        )
    return SapAmbiguousError(f"SAP answered HTTP {status}: {message}", retry_after=retry_after)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _group_documents(rows: list[dict[str, Any]]) -> list[FoundDocument]:
    """Cube rows (one per line item) as documents with their lines, oldest first."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (str(row["CompanyCode"]), str(row["FiscalYear"]), str(row["AccountingDocument"]))
        grouped.setdefault(key, []).append(row)
    found = []
    for (company, year, document), items in grouped.items():
        items.sort(key=lambda i: int(str(i["AccountingDocumentItem"]).strip() or 0))
        is_reversal = any(bool(i.get("IsReversal")) for i in items)
        reversed_ = any(bool(i.get("IsReversed")) for i in items) or (
            not is_reversal and any(str(i.get("ReverseDocument") or "").strip() for i in items)
        )
        found.append(
            FoundDocument(
                company_code=company,
                fiscal_year=year,
                accounting_document=document,
                reference_id=str(items[0].get("DocumentReferenceID") or ""),
                lines=tuple(_line(i) for i in items),
                is_reversal=is_reversal,
                is_reversed=reversed_,
            )
        )
    return sorted(found, key=lambda d: (d.fiscal_year, d.accounting_document))


def _line(row: dict[str, Any]) -> FoundLine:
    account_type = str(row.get("FinancialAccountType") or "")
    account = row.get("Customer") if account_type == "D" else row.get("GLAccount")
    return FoundLine(
        account=str(account or ""),
        account_type=account_type,
        debit_credit=str(row.get("DebitCreditCode") or ""),
        amount=odata.decimal(row.get("AmountInTransactionCurrency")),
        currency=str(row.get("TransactionCurrency") or ""),
    )
