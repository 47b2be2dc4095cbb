"""Imports every domain's models so metadata (and Alembic) sees all tables."""

from __future__ import annotations

import importlib

DOMAINS = ("app.config.models", "app.billing.models", "app.inventory.models", "app.payments.models")


def load_all() -> None:
    for module in DOMAINS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
