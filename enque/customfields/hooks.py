"""Custom fields plug into tickets: the close check and the inbox filter."""

from __future__ import annotations

from enque.core.runtime import Runtime
from enque.customfields.service import check_close, ticket_condition
from enque.tickets.queries import CUSTOM_FIELD_FILTER
from enque.tickets.seams import CLOSE_CHECKS


def setup(runtime: Runtime) -> None:
    runtime.services.setdefault(CLOSE_CHECKS, []).append(check_close)
    runtime.services[CUSTOM_FIELD_FILTER] = ticket_condition
