"""The runtime as the inventory audit sees it: business settings and the SAP client."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.platform.runtime import get_runtime
from app.sap.runtime import SapRuntime

InventoryRuntime = SapRuntime
RuntimeDep = Annotated[InventoryRuntime, Depends(get_runtime)]
