"""The runtime as code that calls SAP sees it: business settings and the SAP client."""

from __future__ import annotations

from typing import Protocol

from app.config.runtime import ConfigRuntime
from app.sap.client import SapClient


class SapRuntime(ConfigRuntime, Protocol):
    sap: SapClient
