"""The ASGI app at the address HMIS deployments know, `app.main:app` (built in `app.shell`)."""

from app.shell.main import app

__all__ = ["app"]
