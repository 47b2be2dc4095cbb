"""What the bridge's calls to SAP did: latency, token fetches, the circuit, the certificate."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from app.platform.metrics import REGISTRY, SAP_BUCKETS

SAP_REQUEST_DURATION = Histogram(
    "bridge_sap_request_duration_seconds",
    "Latency of calls to SAP by operation (journal_entry.post, journal_entry.read_back, "
    "material_documents.read, token, ...) and status (the HTTP code, or unreachable, timeout, "
    "circuit_open; shed: a push not sent after a failed call, with every slot busy).",
    ["operation", "status"],
    buckets=SAP_BUCKETS,
    registry=REGISTRY,
)
SAP_TOKEN_FETCHES = Counter(
    "bridge_sap_token_fetches_total",
    "OAuth client-credentials token fetches by result: ok, refused (bad credentials), error.",
    ["result"],
    registry=REGISTRY,
)
SAP_CLIENT_CERTIFICATE_EXPIRY = Gauge(
    "bridge_sap_client_certificate_expiry_timestamp_seconds",
    "When the SAP client certificate in use expires (Unix time); absent when none is set.",
    registry=REGISTRY,
)
SAP_CIRCUIT_TRANSITIONS = Counter(
    "bridge_sap_circuit_transitions_total",
    "Circuit-breaker state changes by the state entered: open, half_open, closed.",
    ["state"],
    registry=REGISTRY,
)
