"""SAP S/4HANA Cloud simulator: SOAP journal entry posting, OData read-back, fault injection.

``create_sim_app(SimConfig())`` gives the ASGI app; ``SimServer`` serves it on a free port in a
background thread; ``python -m sapsim --port 8600`` serves it in the foreground.
"""

from sapsim.app import create_sim_app, sim_state
from sapsim.config import CompanyCode, GLAccount, SimConfig
from sapsim.gate import ConnectionDropped
from sapsim.server import SimServer, run
from sapsim.state import FaultAction, FaultUpdate, SimState

__all__ = [
    "CompanyCode",
    "ConnectionDropped",
    "FaultAction",
    "FaultUpdate",
    "GLAccount",
    "SimConfig",
    "SimServer",
    "SimState",
    "create_sim_app",
    "run",
    "sim_state",
]
