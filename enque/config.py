"""Settings from the environment (and a `.env` file), validated once at start-up."""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./data/enque.db"
DEFAULT_STORAGE_URL = "file://./data/files"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_prefix: str = "enque:"
    storage_url: str = DEFAULT_STORAGE_URL
    secret_key: str | None = None
    encryption_key: str | None = None
    encryption_keys_old: str = ""
    public_url: str = "http://localhost:8000"
    cors_origins: str | None = None
    smtp_url: str | None = None
    mail_from: str | None = None

    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant_id: str | None = None
    microsoft_authority: str = "https://login.microsoftonline.com"
    microsoft_graph_url: str = "https://graph.microsoft.com/v1.0"

    email_sync_interval: int = Field(180, ge=5)
    email_ca_file: str | None = None  # extra CA bundle for mail servers with a private CA
    max_upload_mb: int = Field(25, ge=1)
    max_json_body_kb: int = Field(1024, ge=1)
    jwt_lifetime_seconds: int = Field(7 * 24 * 3600, ge=60)
    jwt_algorithm: Literal["HS256"] = "HS256"
    password_reset_ttl_seconds: int = 3600
    invitation_ttl_seconds: int = 7 * 24 * 3600
    reopen_window_days: int = 30
    trash_retention_days: int = Field(30, ge=1)  # deleted tickets are purged after this
    notification_email_window_seconds: int = Field(120, ge=0)

    rate_limit_enabled: bool = True
    rate_limit_auth: str = "10/15minute"
    rate_limit_read: str = "300/minute"
    rate_limit_write: str = "120/minute"

    db_pool_size: int = 10
    log_level: str = "INFO"
    log_json: bool | None = None
    metrics_token: str = ""  # when set, `GET /metrics` needs `Authorization: Bearer <token>`
    scheduler_enabled: bool = True
    # Webhook targets let through the private-address check (names or IPs, comma separated).
    webhook_allowed_hosts: str = ""

    realtime_ping_interval: float = Field(25, gt=0)  # seconds between server pings
    realtime_ping_timeout: float = Field(60, gt=0)  # silence after which a socket is dropped
    realtime_queue_size: int = Field(200, ge=1)  # messages waiting per socket before resync
    realtime_auth_timeout: float = Field(5, gt=0)  # time to send {"type": "auth"} when needed
    job_intervals: str = ""  # "name=seconds,…" overrides a job's interval

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("DATABASE_URL must start with sqlite:// or postgresql://")
        return value

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def async_database_url(self) -> str:
        """The URL with the async driver SQLAlchemy needs."""
        url = self.database_url
        if url.startswith("sqlite:"):
            return "sqlite+aiosqlite:" + url[len("sqlite:") :]
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def allowed_origins(self) -> list[str]:
        raw = self.cors_origins or self.public_url
        return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]

    def resolved_secret_key(self) -> str:
        return self.secret_key or _dev_secret(self.data_dir, "secret")

    def resolved_encryption_key(self) -> str:
        return self.encryption_key or _dev_secret(self.data_dir, "encryption_key", as_key=True)

    def production_problems(self) -> list[str]:
        """Every insecure setting that `ENV=production` refuses, with what to change."""
        problems: list[str] = []
        if not self.secret_key or len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if not self.encryption_key:
            problems.append("ENCRYPTION_KEY must be set (32 random bytes, base64)")
        if "*" in (self.cors_origins or ""):
            problems.append("CORS_ORIGINS must not be '*' (credentials are allowed); list origins")
        if not self.public_url.startswith("https://"):
            problems.append("PUBLIC_URL must be an https:// address")
        return problems


@lru_cache
def _dev_secret(data_dir: Path, name: str, as_key: bool = False) -> str:
    """A secret generated once into the data folder, for development only."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(secrets.token_bytes(32)).decode() if as_key else secrets.token_hex(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
