"""The demo workspace created on the first run of the embedded server."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from enque.auth.service import create_workspace_with_admin
from enque.config import Settings
from enque.core.runtime import Runtime
from enque.workspaces.models import Workspace

DEMO_EMAIL = "admin@demo.enque.local"


async def ensure_demo_workspace(settings: Settings) -> tuple[str, str] | None:
    """Create the demo workspace when the database has none; return the new login."""
    runtime = Runtime.build(settings)
    try:
        async with runtime.db.session() as session:
            if (await session.execute(select(Workspace.id).limit(1))).first():
                return None
            password = secrets.token_urlsafe(12)
            await create_workspace_with_admin(
                session,
                email=DEMO_EMAIL,
                password=password,
                display_name="Demo Admin",
                workspace_name="Demo Workspace",
                subdomain="demo",
            )
        login_file = settings.data_dir / "demo-login.txt"
        login_file.write_text(f"email: {DEMO_EMAIL}\npassword: {password}\n")
        login_file.chmod(0o600)
        return DEMO_EMAIL, password
    finally:
        await runtime.close()
