"""`app.main:app`, the ASGI app's address that deployments name, is the shell's app."""

from __future__ import annotations

from fastapi import FastAPI


def test_the_asgi_app_is_served_from_app_main() -> None:
    from app import main
    from app.shell import main as shell_main

    assert isinstance(main.app, FastAPI) and main.app is shell_main.app
    assert main.app.openapi()["info"]["title"] == "hmis-sap-bridge"
