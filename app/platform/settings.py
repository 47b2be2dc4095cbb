"""Infrastructure settings from the environment (and `.env`); business settings live in /config."""

from __future__ import annotations

from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"changeme", "change-me", "secret", "xxx", "todo"}


class Settings(BaseSettings):
    """Process settings. Secrets have no default: start-up fails naming the missing one."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # no default: a mistyped variable must not quietly open a new, empty SQLite file
    database_url: str = Field(min_length=1, validation_alias="DATABASE_URL")
    api_key: SecretStr = Field(validation_alias="BRIDGE_API_KEY")
    admin_api_key: SecretStr = Field(validation_alias="BRIDGE_ADMIN_API_KEY")
    encryption_key: SecretStr = Field(validation_alias="BRIDGE_ENCRYPTION_KEY")
    scheduler_enabled: bool = Field(default=True, validation_alias="BRIDGE_SCHEDULER_ENABLED")
    log_format: Literal["json", "console"] = Field(
        default="json", validation_alias="BRIDGE_LOG_FORMAT"
    )
    allow_insecure_sap_urls: bool = Field(
        default=False, validation_alias="BRIDGE_ALLOW_INSECURE_SAP_URLS"
    )
    outbox_enabled: bool = Field(default=True, validation_alias="BRIDGE_OUTBOX_ENABLED")
    outbox_poll_seconds: float = Field(
        default=1.0, gt=0, validation_alias="BRIDGE_OUTBOX_POLL_SECONDS"
    )
    retry_base_seconds: float = Field(
        default=2.0, gt=0, validation_alias="BRIDGE_RETRY_BASE_SECONDS"
    )
    retry_max_seconds: float = Field(
        default=300.0, gt=0, validation_alias="BRIDGE_RETRY_MAX_SECONDS"
    )
    circuit_min_calls: int = Field(default=10, ge=1, validation_alias="BRIDGE_CIRCUIT_MIN_CALLS")
    circuit_consecutive_failures: int = Field(
        default=5, ge=1, validation_alias="BRIDGE_CIRCUIT_CONSECUTIVE_FAILURES"
    )
    circuit_failure_ratio: float = Field(
        default=0.5, gt=0, le=1, validation_alias="BRIDGE_CIRCUIT_FAILURE_RATIO"
    )
    circuit_open_seconds: float = Field(
        default=2.0, gt=0, validation_alias="BRIDGE_CIRCUIT_OPEN_SECONDS"
    )
    circuit_max_open_seconds: float = Field(
        default=60.0, gt=0, validation_alias="BRIDGE_CIRCUIT_MAX_OPEN_SECONDS"
    )
    ambiguous_settle_seconds: float = Field(
        default=120.0, ge=0, validation_alias="BRIDGE_AMBIGUOUS_SETTLE_SECONDS"
    )
    lease_seconds: float = Field(default=30.0, gt=0, validation_alias="BRIDGE_LEASE_SECONDS")
    read_back_limit: int = Field(default=3, ge=1, validation_alias="BRIDGE_READ_BACK_LIMIT")
    max_body_bytes: int = Field(default=1_048_576, gt=0, validation_alias="BRIDGE_MAX_BODY_BYTES")
    metrics_cache_seconds: float = Field(
        default=10.0, ge=0, validation_alias="BRIDGE_METRICS_CACHE_SECONDS"
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 7, validation_alias="BRIDGE_CONSOLE_SESSION_HOURS"
    )

    @field_validator("api_key", "admin_api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if len(raw) < 16 or raw.lower() in PLACEHOLDERS:
            raise ValueError("must be a random value of at least 16 characters")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr) -> SecretStr:
        for key in value.get_secret_value().split(","):
            try:
                Fernet(key.strip().encode())
            except ValueError:
                raise ValueError(
                    "must be a Fernet key (generate one with `bridge config generate-key`)"
                ) from None
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def describe_error(error: ValidationError) -> str:
    """One line naming each bad or missing setting, never echoing a value."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "settings"
        if item["type"] == "missing":
            parts.append(f"{name} is not set")
        else:
            parts.append(f"{name} {item['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(parts)
