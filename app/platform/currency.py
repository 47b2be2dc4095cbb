"""ISO 4217 currencies and their minor units: money is rounded to the currency's own decimals."""

from __future__ import annotations

from decimal import Decimal

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}


def minor_units(currency: str) -> int:
    """Decimals of an active ISO 4217 currency; KeyError for an unknown code."""
    return MINOR_UNITS[currency]


def is_known(currency: str) -> bool:
    return currency in MINOR_UNITS


def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency, e.g. Decimal('0.01') for LKR."""
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def fits(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more decimals than the currency allows."""
    exponent = amount.normalize().as_tuple().exponent
    return isinstance(exponent, int) and -exponent <= MINOR_UNITS[currency]


def format_amount(amount: Decimal, currency: str) -> str:
    """The amount with exactly the currency's decimals, e.g. '15000.00'."""
    return f"{amount.quantize(quantum(currency)):f}"


def display(amount: Decimal, currency: str) -> str:
    """`format_amount` for a known currency; a stored payment may carry a code the bridge does
    not know (it is flagged), and then shows its amount as received."""
    return format_amount(amount, currency) if is_known(currency) else f"{amount:f}"
