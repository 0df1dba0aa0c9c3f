"""Custom fields plug into tickets, customers and companies: their values in the entities'
bodies, the close check, the inbox filter, ticket search and automation conditions."""

from __future__ import annotations

from enque.automations.service import FIELD_DEFINITIONS
from enque.core.runtime import Runtime
from enque.customers.seams import CUSTOM_FIELDS
from enque.customfields.service import FieldValues, check_close, definitions, ticket_condition
from enque.tickets.queries import CUSTOM_FIELD_FILTER
from enque.tickets.seams import CLOSE_CHECKS


def setup(runtime: Runtime) -> None:
    runtime.services.setdefault(CLOSE_CHECKS, []).append(check_close)
    runtime.services[CUSTOM_FIELD_FILTER] = ticket_condition
    runtime.services[CUSTOM_FIELDS] = FieldValues()
    runtime.services[FIELD_DEFINITIONS] = definitions
