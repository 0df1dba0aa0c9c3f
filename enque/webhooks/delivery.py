"""Sending deliveries: signed POSTs, retries with backoff, automatic disable.

Each POST carries `Enque-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
under the subscription's secret, plus `Enque-Event`, `Enque-Delivery` (stable across retries:
receivers deduplicate on it) and `Enque-Webhook`. A 2xx answer is success; anything else, a
timeout or a refused address is a failed attempt, retried after `BACKOFF[attempt - 1]` seconds
until `MAX_ATTEMPTS`. After `DISABLE_AFTER` failed attempts in a row the subscription is
switched off (`webhook.disabled`); switching it back on resets the count.

Attempts are claimed with a lease (`next_attempt_at` moved past the request timeout in the
same UPDATE that selects them), so two workers never send the same attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from enque.core.db import now as unix_now
from enque.core.events import Event, emit
from enque.core.runtime import Runtime
from enque.core.secrets import unseal
from enque.webhooks.guard import allowed_hosts
from enque.webhooks.models import Webhook, WebhookDelivery

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

BACKOFF = (30, 120, 600, 3600, 6 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(BACKOFF) + 1
DISABLE_AFTER = 20
TIMEOUT = 10.0
LEASE = 60  # seconds an attempt is claimed for (longer than TIMEOUT)
BATCH = 200
CONCURRENCY = 20
EXCERPT = 500
USER_AGENT = "Enque-Webhooks/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Outcome:
    delivery_id: str
    webhook_id: str
    ok: bool
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    duration_ms: int = 0


class Sender:
    """One per process: the HTTP client, the in-flight tasks and the due-attempts runner."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._queue: list[str] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            from enque.webhooks.transport import guarded_client  # httpx: on first delivery

            settings = self.runtime.settings
            self._client = guarded_client(
                lambda: allowed_hosts(settings.webhook_allowed_hosts), timeout=TIMEOUT
            )
        return self._client

    def kick(self, delivery_ids: list[str]) -> None:
        """Send these new (already claimed) deliveries now, in the background. Kicks that
        arrive while a batch is in flight are sent together as the next batch."""
        self._queue.extend(delivery_ids)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(self._flusher)
            self._flusher.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            try:
                await self._send_claimed(batch, unix_now())
            except Exception:
                log.exception("webhook batch failed; the job retries it when the lease lapses")

    async def idle(self) -> None:
        """Wait until every background send has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_due(self, *, at: int | None = None) -> int:
        """Send every attempt due at `at` (default now); the number of attempts made."""
        moment = unix_now() if at is None else at
        total = 0
        while True:
            async with self.runtime.db.session(write=False) as session:
                ids = list(
                    (
                        await session.execute(
                            select(WebhookDelivery.id)
                            .where(
                                WebhookDelivery.status == "pending",
                                WebhookDelivery.next_attempt_at <= moment,
                            )
                            .order_by(WebhookDelivery.next_attempt_at)
                            .limit(BATCH)
                        )
                    ).scalars()
                )
            if not ids:
                return total
            sent = await self.send(ids, at=moment)
            total += sent
            if sent == 0:
                return total

    async def send(self, delivery_ids: list[str], *, at: int | None = None) -> int:
        """Claim these deliveries (those still due), post them, record the outcomes."""
        moment = unix_now() if at is None else at
        async with self.runtime.db.transaction() as session:
            claimed = list(
                (
                    await session.execute(
                        update(WebhookDelivery)
                        .where(
                            WebhookDelivery.id.in_(delivery_ids),
                            WebhookDelivery.status == "pending",
                            WebhookDelivery.next_attempt_at <= moment,
                        )
                        .values(
                            next_attempt_at=moment + LEASE,
                            attempts=WebhookDelivery.attempts + 1,
                        )
                        .returning(WebhookDelivery.id)
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
        if not claimed:
            return 0
        return await self._send_claimed(claimed, moment)

    async def _send_claimed(self, claimed: list[str], moment: int) -> int:
        async with self.runtime.db.session(write=False) as session:
            rows = (
                await session.execute(
                    select(WebhookDelivery, Webhook)
                    .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                    .where(WebhookDelivery.id.in_(claimed))
                )
            ).all()
        # one endpoint's deliveries in the order their events happened (ids are UUIDv7),
        # one after another; the endpoints side by side
        per_endpoint: dict[str, list[tuple[WebhookDelivery, Webhook]]] = {}
        for delivery, webhook in sorted(rows, key=lambda row: row[0].id):
            per_endpoint.setdefault(webhook.id, []).append((delivery, webhook))
        sent = await asyncio.gather(*(self._post_in_turn(p) for p in per_endpoint.values()))
        outcomes = [outcome for endpoint in sent for outcome in endpoint]
        await self._record(outcomes, {d.id: d.attempts for d, _ in rows}, moment)
        return len(outcomes)

    async def _post_in_turn(self, pairs: list[tuple[WebhookDelivery, Webhook]]) -> list[Outcome]:
        return [await self._post(delivery, webhook) for delivery, webhook in pairs]

    async def _post(self, delivery: WebhookDelivery, webhook: Webhook) -> Outcome:
        import httpx  # on first use: importing it slows every start

        if not webhook.is_active:
            return Outcome(delivery.id, webhook.id, False, error="webhook disabled")
        secret = str((unseal(self.runtime.cipher, webhook, "secret") or {}).get("secret", ""))
        body = orjson.dumps(delivery.body)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Enque-Event": delivery.event_type,
            "Enque-Delivery": delivery.id,
            "Enque-Webhook": webhook.id,
            "Enque-Signature": sign(secret, timestamp, body),
        }
        started = time.perf_counter()
        async with self._gate:
            try:
                try:
                    response = await self.client.post(webhook.url, content=body, headers=headers)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # a kept-alive connection the receiver had just closed: once more on a
                    # new one (receivers deduplicate on Enque-Delivery in any case)
                    response = await self.client.post(webhook.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                elapsed = int((time.perf_counter() - started) * 1000)
                message = str(exc) or type(exc).__name__
                return Outcome(delivery.id, webhook.id, False, error=message, duration_ms=elapsed)
        elapsed = int((time.perf_counter() - started) * 1000)
        return Outcome(
            delivery.id,
            webhook.id,
            200 <= response.status_code < 300,
            status_code=response.status_code,
            excerpt=response.text[:EXCERPT],
            error=None if response.is_success else f"HTTP {response.status_code}",
            duration_ms=elapsed,
        )

    async def _record(self, outcomes: list[Outcome], attempts: dict[str, int], at: int) -> None:
        moment = unix_now()
        async with self.runtime.db.transaction() as session:
            failed_hooks: dict[str, int] = {}
            for outcome in outcomes:
                made = attempts[outcome.delivery_id]
                values: dict[str, Any] = {
                    "status_code": outcome.status_code,
                    "response_excerpt": outcome.excerpt,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                    "updated_at": moment,
                }
                if outcome.ok:
                    values.update(status="succeeded", delivered_at=moment, next_attempt_at=None)
                elif made >= MAX_ATTEMPTS or outcome.error == "webhook disabled":
                    values.update(status="failed", next_attempt_at=None)
                else:
                    values["next_attempt_at"] = at + BACKOFF[made - 1]
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == outcome.delivery_id)
                    .values(**values)
                )
                if outcome.error == "webhook disabled":
                    continue
                if outcome.ok:
                    failed_hooks.pop(outcome.webhook_id, None)
                    await session.execute(
                        update(Webhook)
                        .where(Webhook.id == outcome.webhook_id, Webhook.failure_count != 0)
                        .values(failure_count=0)
                    )
                else:
                    failed_hooks[outcome.webhook_id] = failed_hooks.get(outcome.webhook_id, 0) + 1
            for webhook_id, count in failed_hooks.items():
                await session.execute(
                    update(Webhook)
                    .where(Webhook.id == webhook_id)
                    .values(failure_count=Webhook.failure_count + count)
                )
            if failed_hooks:
                to_disable = (
                    await session.execute(
                        select(Webhook).where(
                            Webhook.id.in_(list(failed_hooks)),
                            Webhook.is_active.is_(True),
                            Webhook.failure_count >= DISABLE_AFTER,
                        )
                    )
                ).scalars()
                for webhook in to_disable:
                    webhook.is_active = False
                    webhook.disabled_at = moment
                    emit(
                        session,
                        Event(
                            "webhook.disabled",
                            webhook.workspace_id,
                            {"id": webhook.id, "failureCount": webhook.failure_count},
                            channels=["webhooks"],
                        ),
                    )
