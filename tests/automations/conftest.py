from __future__ import annotations

import pytest

from enque.core.runtime import Runtime
from tests.automations.support import FakeTickets


@pytest.fixture
def fake_tickets(app_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> FakeTickets:
    """The tickets domain's loader and executor, played by an in-memory store."""
    fake = FakeTickets()
    monkeypatch.setitem(app_runtime.services, "ticket_facts", fake.load)
    monkeypatch.setitem(app_runtime.services, "automation_executor", fake)
    return fake
