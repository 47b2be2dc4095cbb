"""How the bridge proves who it is to each SAP service: the methods and the client certificate.

SAP's posting service (SOAP, SAP_COM_0002) offers in its WSDL policy HTTP Basic or an X.509
client certificate, not OAuth; the OData read services take OAuth client credentials as well.
So each service has its own method, `Posting Auth Method` (default `basic`) and `Read Auth
Method` (default `oauth`); the older `Auth Method`, where set, still means both.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from datetime import UTC, datetime
from typing import Literal

import certifi
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

Service = Literal["posting", "read"]
METHODS = ("basic", "certificate", "oauth")
DEFAULTS: dict[Service, str] = {"posting": "basic", "read": "oauth"}
#: the certificate's expiry is warned of this many days ahead
EXPIRY_WARNING_DAYS = 30


class CertificateError(ValueError):
    """A client certificate or key that cannot serve: the message says which and why."""


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise CertificateError(
            "is not a PEM X.509 certificate (-----BEGIN CERTIFICATE-----)"
        ) from None


def load_key(pem: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise CertificateError("is encrypted; store the key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(
            "is not a PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)"
        ) from None


def check_certificate(pem: str, now: datetime | None = None) -> x509.Certificate:
    """The certificate, if it parses and is valid now."""
    certificate = load_certificate(pem)
    now = now or datetime.now(UTC)
    if certificate.not_valid_after_utc <= now:
        raise CertificateError(f"expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    if certificate.not_valid_before_utc > now:
        raise CertificateError(f"is not valid before {certificate.not_valid_before_utc:%Y-%m-%d}")
    return certificate


def check_pair(certificate_pem: str, key_pem: str) -> None:
    """The key belongs to the certificate (their public keys are the same)."""
    public = load_certificate(certificate_pem).public_key()
    key = load_key(key_pem)
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != public.public_bytes(*raw):
        raise CertificateError("does not belong to the Client Certificate (another key pair)")


def expires_at(certificate_pem: str) -> datetime:
    return load_certificate(certificate_pem).not_valid_after_utc


def expiry_verdict(certificate_pem: str, now: datetime | None = None) -> str:
    """`ok, expires …` or what to do: shown on /health/ready, never failing it."""
    try:
        expiry = expires_at(certificate_pem)
    except CertificateError as exc:
        return f"unusable: the Client Certificate {exc}"
    days = (expiry - (now or datetime.now(UTC))).days
    if days < 0:
        return f"expired on {expiry:%Y-%m-%d}: save a new Client Certificate and its key"
    if days < EXPIRY_WARNING_DAYS:
        return f"warning: expires on {expiry:%Y-%m-%d}, in {days} days: renew it in SAP and here"
    return f"ok, expires on {expiry:%Y-%m-%d}"


def ssl_context(certificate_pem: str, key_pem: str) -> ssl.SSLContext:
    """A TLS client context presenting the certificate; servers are verified against certifi's
    CAs, or `SSL_CERT_FILE` where set (as httpx does by default)."""
    check_pair(certificate_pem, key_pem)
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())
    # Under TLS 1.2 a server that refuses the certificate says so inside the handshake, before
    # any request is written: "refused, nothing sent". Under TLS 1.3 the refusal arrives after
    # the client has written its request, and looks like an answer lost after sending.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads a certificate chain only from files: a private folder, removed at once
    with tempfile.TemporaryDirectory(prefix="bridge-cert-") as folder:
        chain = os.path.join(folder, "client.pem")
        descriptor = os.open(chain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(certificate_pem.strip() + "\n" + key_pem.strip() + "\n")
        context.load_cert_chain(chain)
    return context
