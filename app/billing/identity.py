"""The DocumentReferenceID the bridge gives each posting and reversal it sends to SAP.

HMIS's reference cannot be the identity: two bills may share it, a refund carries the
refunded bill's, SAP's field holds 16 characters, and a tenant may store it upper-cased. So the
bridge draws its own: a prefix naming the kind, then 14 characters of Crockford's base32 (70
random bits), which is upper-case letters and digits only, kept by SAP's `token` type as sent.
`posting_references` (a primary key) makes each one unique among everything ever sent; a draw
that ever met an earlier one would fail its insert rather than be sent.
"""

from __future__ import annotations

import secrets

from app.billing.models import POSTING, REVERSAL

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PREFIX = {POSTING: "HB", REVERSAL: "HR"}
LENGTH = 16


def new_reference(kind: str) -> str:
    """A fresh identity for a posting (`HB…`) or a reversal (`HR…`), 16 characters."""
    prefix = _PREFIX[kind]
    digits = LENGTH - len(prefix)
    number = secrets.randbits(5 * digits)
    return prefix + "".join(_ALPHABET[(number >> (5 * i)) & 31] for i in range(digits))
