"""``python -m sapsim --port 8600``: serve the SAP simulator."""

from __future__ import annotations

import argparse

from sapsim.config import SimConfig
from sapsim.server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sapsim", description="SAP S/4HANA Cloud simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--latency-ms", type=int, default=0, help="base latency of SOAP posts")
    parser.add_argument("--page-cap", type=int, default=1000, help="OData server page size")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = SimConfig(latency_ms=args.latency_ms, page_cap=args.page_cap)
    print(
        f"SAP simulator on http://{args.host}:{args.port} "
        f"(client {config.client_id} / {config.client_secret}, company codes "
        f"{', '.join(config.companies)})"
    )
    run(args.host, args.port, config, args.log_level)


if __name__ == "__main__":
    main()
