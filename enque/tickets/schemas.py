from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from enque.core.api import MAX_UNIX, ApiInput, ApiModel, Email, PageQuery
from enque.customers.schemas import CustomFieldsIn

Status = Literal["Unread", "Open", "In Progress", "With User", "Closed"]
Priority = Literal["Low", "Medium", "High", "Critical"]
Sort = Literal["-updatedAt", "-createdAt", "priority", "dueAt", "slaDue"]
SlaTarget = Literal["firstResponse", "nextResponse", "resolution"]
Id = Annotated[str, Field(min_length=1, max_length=64)]
Subject = Annotated[str, Field(min_length=1, max_length=1000)]
Html = Annotated[str, Field(max_length=2_000_000)]
Timestamp = Annotated[int, Field(ge=0, le=MAX_UNIX)]


def normalize_tag(value: str) -> str:
    tag = " ".join(value.split()).lower()
    if not tag or len(tag) > 50 or "," in tag:
        raise ValueError("a tag is 1 to 50 characters without commas")
    return tag


Tag = Annotated[str, AfterValidator(normalize_tag)]
Tags = Annotated[list[Tag], Field(max_length=30)]


class NamedRef(ApiModel):
    id: str
    name: str


class CustomerRef(ApiModel):
    id: str
    name: str
    email: str


class CategoryRef(ApiModel):
    id: str
    name: str
    color: str | None


class TicketSummary(ApiModel):
    """A ticket as the inbox lists it (and as `ticket.created` / `ticket.updated` carry it)."""

    id: str
    number: int
    subject: str
    status: str
    priority: str
    tags: list[str]
    due_at: int | None
    is_read: bool
    customer: CustomerRef
    company_id: str | None
    assignee: NamedRef | None
    team: NamedRef | None
    category: CategoryRef | None
    mailbox_id: str | None
    first_response_at: int | None
    last_customer_reply_at: int | None
    last_agent_reply_at: int | None
    merged_into_ticket_id: str | None
    created_at: int
    updated_at: int
    version: int
    # SLA state (null and empty when no policy applies)
    sla_policy_id: str | None
    first_response_due_at: int | None
    next_response_due_at: int | None
    resolution_due_at: int | None
    sla_due_at: int | None  # the soonest target still pending (the `slaDue` sort)
    sla_paused_at: int | None  # while `With User`
    sla_breached: list[SlaTarget]  # the targets missed so far
    custom_fields: dict[str, Any]


class TicketBodyOut(ApiModel):
    content: str
    text: str
    attachments: list[dict[str, Any]] = []  # files of the first message (e.g. the email)


class TicketCounts(ApiModel):
    comments: int
    replies: int
    notes: int
    customer_messages: int


class TicketDetail(TicketSummary):
    company: NamedRef | None
    cc: list[str]
    resolved_at: int | None
    closed_at: int | None
    merged_at: int | None
    linked_ticket_id: str | None
    deleted_at: int | None
    body: TicketBodyOut
    counts: TicketCounts


class ActivityOut(ApiModel):
    id: str
    actor: dict[str, Any]
    verb: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: int


class CustomerIn(ApiInput):
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class TicketIn(ApiInput):
    subject: Subject
    body: Html = ""
    user_id: Id | None = None
    customer: CustomerIn | None = None
    priority: Priority = "Medium"
    status: Status | None = None
    assignee_id: Id | None = None
    team_id: Id | None = None
    category_id: Id | None = None
    tags: Tags = []
    due_at: Timestamp | None = None
    mailbox_id: Id | None = None
    notify_customer: bool = False
    custom_fields: CustomFieldsIn | None = None


class TicketPatch(ApiInput):
    subject: Subject | None = None
    status: Status | None = None
    priority: Priority | None = None
    assignee_id: Id | None = None
    team_id: Id | None = None
    category_id: Id | None = None
    tags: Tags | None = None
    due_at: Timestamp | None = None
    is_read: bool | None = None
    custom_fields: CustomFieldsIn | None = None
    version: int | None = None


class BulkSet(ApiInput):
    status: Status | None = None
    assignee_id: Id | None = None
    team_id: Id | None = None
    priority: Priority | None = None
    category_id: Id | None = None


class BulkIn(ApiInput):
    ids: Annotated[list[Id], Field(min_length=1, max_length=200)]
    set: BulkSet


class BulkResult(ApiModel):
    id: str
    success: bool
    ticket: TicketSummary | None = None
    error: dict[str, Any] | None = None


class MergeIn(ApiInput):
    source_ticket_ids: Annotated[list[Id], Field(min_length=1, max_length=50)]


AnId = Annotated[str | None, Field(max_length=64)]
UnixBound = Annotated[int | None, Field(ge=0, le=MAX_UNIX)]


class TicketListQuery(PageQuery):
    """The query string of `GET /v1/tickets`: filters, sort and page."""

    status: tuple[Status, ...] = ()
    priority: tuple[Priority, ...] = ()
    assignee_id: AnId = Field(None, alias="assigneeId", description="an agent id, `me` or `none`")
    team_id: AnId = Field(None, alias="teamId")
    category_id: AnId = Field(None, alias="categoryId")
    user_id: AnId = Field(None, alias="userId")
    company_id: AnId = Field(None, alias="companyId")
    mailbox_id: AnId = Field(None, alias="mailboxId")
    tag: str | None = Field(None, max_length=50)
    q: str | None = Field(None, max_length=500)
    created_after: UnixBound = Field(None, alias="createdAfter")
    created_before: UnixBound = Field(None, alias="createdBefore")
    updated_after: UnixBound = Field(None, alias="updatedAfter")
    updated_before: UnixBound = Field(None, alias="updatedBefore")
    include_merged: bool = Field(False, alias="includeMerged")
    breached: bool | None = Field(
        None, description="`true`: an SLA target was missed; `false`: none was (or no SLA)"
    )
    sort: Sort = Field(
        "-updatedAt",
        description="`slaDue`: SLA target due soonest first, tickets with none due after them",
    )
    custom_field: tuple[str, ...] = Field(
        (), alias="cf", max_length=20, description="`key:value`, a custom field equal to value"
    )
