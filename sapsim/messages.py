"""SAP log messages the simulator returns in a journal entry confirmation.

Number, class and text of 605/609(RW), 102/507(F5) and 004(FH) come from the real confirmations
in ``specs/``; 702, 201, 354 and 727(F5) from SAP's message texts (README 1.4 and 6). 248(KI),
701(KM) and 219(F2) are standard messages whose use by this API is unverified. Class ``ZSIM``
marks rules SAP documents no message for (a sign that contradicts DebitCreditCode, too many
decimals, unknown or mixed currencies) and the error injected by the fault ``document_with_error``
(009): the text is the simulator's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class LogMessage:
    """One ``Log/Item``: TypeID ``<number>(<class>)``, severity, note and message variables."""

    number: str
    msg_class: str
    severity: int
    note: str
    variables: tuple[str, ...] = ()
    with_uri: bool = True

    @property
    def type_id(self) -> str:
        return f"{self.number}({self.msg_class})"

    def web_uri(self, host: str) -> str | None:
        """SAP's long-text link: ``/sap/xi/docu_apperror?...OBJECT=<class><number>&MSGV1..``."""
        if not self.with_uri:
            return None
        params = [
            "ID=NA",
            f"OBJECT={quote(self.msg_class + self.number, safe='')}",
            "LANGUAGE=E",
        ]
        params += [f"MSGV{i}={quote(v, safe='')}" for i, v in enumerate(self.variables, 1)]
        return f"{host}/sap/xi/docu_apperror?{'&'.join(params)}"


# key: (number, class, severity, text with & placeholders, has a WebURI)
_CATALOGUE: dict[str, tuple[str, str, int, str, bool]] = {
    "posted": ("605", "RW", 1, "Document posted successfully: & & &", True),
    "test_run": (
        "614",
        "RW",
        1,
        "Test run: document & & would be posted, nothing was saved",
        False,
    ),
    "error_in_document": ("609", "RW", 3, "Error in document: & & &", True),
    "balance": ("702", "F5", 3, "Balance in transaction currency", True),
    "gl_not_in_chart": (
        "507",
        "F5",
        3,
        "G/L account & is not defined in chart of accounts &",
        True,
    ),
    "account_not_in_chart": (
        "004",
        "FH",
        3,
        "Account & does not exist in chart of accounts &",
        False,
    ),
    "customer_not_in_company": (
        "102",
        "F5",
        3,
        "Customer & is not defined in company code &",
        True,
    ),
    "vendor_not_in_company": ("104", "F5", 3, "Vendor & is not defined in company code &", True),
    "reconciliation_account": (
        "354",
        "F5",
        3,
        "Account & in company code & cannot be directly posted to",
        True,
    ),
    "period_not_open": ("201", "F5", 3, "Posting period & & is not open", True),
    "too_many_items": ("727", "F5", 3, "Maximum number of items in FI reached", True),
    "company_unknown": ("219", "F2", 3, "Company code & is not defined", True),
    "cost_center_unknown": ("248", "KI", 3, "Cost center &/& does not exist on &", True),
    "profit_center_unknown": ("701", "KM", 3, "Profit center &/& does not exist", True),
    "sign_mismatch": (
        "001",
        "ZSIM",
        3,
        "Item &: amount & contradicts debit/credit code &",
        False,
    ),
    "debit_credit_invalid": ("002", "ZSIM", 3, "Item &: debit/credit code & is not S or H", False),
    "too_many_decimals": (
        "003",
        "ZSIM",
        3,
        "Item &: amount & has more than & decimal places allowed for currency &",
        False,
    ),
    "currency_unknown": ("004", "ZSIM", 3, "Currency & is not defined", False),
    "currency_mixed": ("005", "ZSIM", 3, "Items use different transaction currencies &", False),
    "no_items": ("006", "ZSIM", 3, "Document contains no items", False),
    "cross_company": (
        "007",
        "ZSIM",
        3,
        "Item &: cross-company posting to & is not supported",
        False,
    ),
    "unsupported_item": ("008", "ZSIM", 3, "& is not supported by the simulator", False),
    "injected_error": (
        "009",
        "ZSIM",
        3,
        "Error reported after document & & & was posted (injected fault)",
        False,
    ),
}


def message(key: str, *variables: object) -> LogMessage:
    """Build a catalogue message, filling its ``&`` placeholders in order."""
    number, msg_class, severity, template, with_uri = _CATALOGUE[key]
    values = tuple(str(v) for v in variables)
    parts = template.split("&")
    note = parts[0] + "".join(values[i] + part for i, part in enumerate(parts[1:]))
    return LogMessage(number, msg_class, severity, note, values, with_uri)
