"""Tables of the business settings store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.platform.db import Base, UTCDateTime, utcnow


class ConfigEntry(Base):
    """One business setting; secret values are Fernet tokens."""

    __tablename__ = "config_entries"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class ConfigAudit(Base):
    """Every change to a setting or the revenue rules; secret values are masked."""

    __tablename__ = "config_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RevenueRule(Base):
    """Which G/L account (and profit or cost centre) an HMIS department's revenue goes to."""

    __tablename__ = "revenue_rules"

    department: Mapped[str] = mapped_column(String(50), primary_key=True)
    gl_account: Mapped[str] = mapped_column(String(10))
    profit_center: Mapped[str | None] = mapped_column(String(10))
    cost_center: Mapped[str | None] = mapped_column(String(10))
