"""Master data and knobs of the simulated S/4HANA Cloud tenant.

Everything has a default, so ``SimConfig()`` is a working tenant: company code ``1000`` (LKR,
chart of accounts ``YCOA``) with revenue, bank and receivable accounts, a few customers, profit
centres and cost centres, and credentials ``sim-client`` / ``sim-secret``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Decimals per currency (SAP tables TCURC/TCURX); a currency not listed is unknown to the tenant.
_TWO_DECIMALS = "LKR USD EUR GBP INR AUD CAD CHF CNY SGD AED SAR QAR MYR THB PKR BDT NPR MVR"
DEFAULT_CURRENCY_DECIMALS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS.split(), 2),
    **dict.fromkeys(["JPY", "KRW", "VND"], 0),
    **dict.fromkeys(["KWD", "BHD", "OMR", "TND"], 3),
}


class GLAccount(BaseModel):
    """A G/L account of the company code's chart of accounts."""

    model_config = ConfigDict(frozen=True)

    name: str
    #: Reconciliation accounts (customer/supplier) refuse direct G/L postings (F5 354).
    reconciliation: bool = False


def _default_gl_accounts() -> dict[str, GLAccount]:
    return {
        "41000000": GLAccount(name="Revenue - consultations"),
        "41000100": GLAccount(name="Revenue - laboratory"),
        "41000200": GLAccount(name="Revenue - pharmacy"),
        "41000300": GLAccount(name="Revenue - radiology"),
        "42000000": GLAccount(name="Other operating revenue"),
        "11000000": GLAccount(name="Bank - main account"),
        "74000000": GLAccount(name="Cash discount granted"),
        "12100000": GLAccount(name="Receivables HMIS clearing"),
        "12000000": GLAccount(name="Receivables domestic", reconciliation=True),
        "21000000": GLAccount(name="Payables domestic", reconciliation=True),
    }


class CompanyCode(BaseModel):
    """One company code and the master data posted against it."""

    name: str = "Sim Hospital"
    currency: str = "LKR"
    chart_of_accounts: str = "YCOA"
    controlling_area: str = "A000"
    gl_accounts: dict[str, GLAccount] = Field(default_factory=_default_gl_accounts)
    #: Customer number -> name; each customer's receivable goes to ``customer_recon_account``.
    customers: dict[str, str] = Field(
        default_factory=lambda: {
            "10000001": "Walk-in patients",
            "10000002": "Corporate patients",
            "INS-0001": "Ceylinco Insurance",
            "INS-0002": "AIA Insurance",
        }
    )
    suppliers: dict[str, str] = Field(default_factory=lambda: {"20000001": "Medical Supplies Ltd"})
    customer_recon_account: str = "12000000"
    supplier_recon_account: str = "21000000"
    profit_centers: set[str] = Field(default_factory=lambda: {"YB700", "PC100", "PC200", "PC300"})
    cost_centers: set[str] = Field(default_factory=lambda: {"CC100", "CC200", "CC300", "YB110"})
    #: Bank account debited by simulated incoming payments (``/sim/clear``).
    bank_account: str = "11000000"
    #: Expense account debited with a cash discount granted on an incoming payment.
    cash_discount_account: str = "74000000"
    #: G/L accounts treated as receivables when clearing a document without a customer line.
    ar_gl_accounts: set[str] = Field(default_factory=lambda: {"12100000"})


class SimConfig(BaseModel):
    """Configuration of one simulator instance; every field has a working default."""

    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    token_lifetime_s: int = 3600
    token_scope: str = "SAP_COM_0002 SAP_COM_0303 SAP_COM_0108"
    companies: dict[str, CompanyCode] = Field(default_factory=lambda: {"1000": CompanyCode()})
    #: Closed posting periods as (company code, "YYYY-MM"); postings into them get F5 201.
    closed_periods: set[tuple[str, str]] = Field(default_factory=set)
    currency_decimals: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS)
    )
    #: Served over TLS that requires a client certificate (uvicorn with ``ssl_cert_reqs`` set
    #: to CERT_REQUIRED and the client CA): an https request without ``Authorization`` is the
    #: certificate's communication user.
    certificate_clients: bool = False
    #: Base latency added to every SOAP posting (overlapping, like parallel work processes).
    latency_ms: int = 0
    #: Base latency added to every OData read.
    odata_latency_ms: int = 0
    #: Server-side page size of OData collections (``__next`` beyond it).
    page_cap: int = 1000
    #: Logical system in success notes ("BKPFF <AWKEY> <LOGSYS>").
    logical_system: str = "0SIMCLNT100"
    #: System id in response MessageHeader/SenderBusinessSystemID.
    system_id: str = "SIM"
    #: Host used in log item WebURIs.
    docu_host: str = "http://sapsim.local:50000"
    max_document_items: int = 999

    def company(self, code: str) -> CompanyCode | None:
        """The company code's master data, or None when it does not exist."""
        return self.companies.get(code)

    def decimals(self, currency: str) -> int | None:
        """Decimals of a currency, or None when the currency is unknown."""
        return self.currency_decimals.get(currency)
