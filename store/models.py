"""All tables of jixiao (sqlmodel).

Invariants:
- money is integer fen (``BIGINT``), never float or NUMERIC;
- every datetime is timezone-aware UTC in the database (sqlmodel's UTCDateTime); calendar dates
  (paid on, arrived on) are plain ``date`` in the project's timezone;
- scores and rates are exact decimals stored as text (``DecimalText``);
- history is kept: definitions are versioned, responses and confirmations are versioned with one
  ``is_current`` row per (link/unit, subject), overrides and schedule changes are append-only.

Relationships are not declared: queries join explicitly, so no lazy load can hit the event loop.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Double, Index, MetaData, UniqueConstraint, false
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from store.types import DecimalText, JsonDoc

# A naming convention lets Alembic's batch mode (SQLite) drop and recreate named constraints.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def _json(nullable: bool = False) -> Any:
    return Field(default_factory=dict, sa_column=Column(JsonDoc, nullable=nullable))


def _fen(**kw: Any) -> Any:
    return Field(sa_type=BigInteger, **kw)


# ============================================================================ projects


class Project(SQLModel, table=True):
    """An evaluation project; ``current_version`` points at the active definition."""

    __tablename__ = "project"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    year: int
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    current_version: int = 1
    budget_fen: int = _fen(default=0)
    created_at: datetime
    updated_at: datetime


class ProjectVersion(SQLModel, table=True):
    """Every loaded definition, kept forever; ``definition`` is the validated JSON snapshot."""

    __tablename__ = "project_version"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int
    content_hash: str = Field(max_length=64)
    definition: dict[str, Any] = _json()
    loaded_at: datetime
    loaded_by: str = Field(default="", max_length=100)


class ProjectNarrative(SQLModel, table=True):
    """The text people write about a project (``config.narrative.Narrative`` as JSON): 背景,
    目标, per-indicator evidence and deviation notes, 经验做法, 问题, 建议. Append-only: each edit
    (from ``narrative.toml`` on load, or the API) is a new revision; the newest one applies.
    ``definition_version`` records the definition it was written against (its indicator keys)."""

    __tablename__ = "project_narrative"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("project_id", "revision"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    revision: int
    definition_version: int
    content_hash: str = Field(max_length=64)
    body: dict[str, Any] = _json()
    created_at: datetime
    created_by: str = Field(default="", max_length=100)


class Unit(SQLModel, table=True):
    """A project-holding unit (项目承担单位). ``key`` is stable across definition versions."""

    __tablename__ = "unit"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("project_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    key: str = Field(max_length=64)
    name: str = Field(max_length=200)
    uscc: str | None = Field(default=None, max_length=18)
    channel_kind: str = Field(default="console", max_length=20)
    channel_address: str = Field(default="", max_length=500)
    channel_config: dict[str, Any] = _json()
    active: bool = True
    created_at: datetime
    updated_at: datetime


class FundArrival(SQLModel, table=True):
    """Money arriving in the project (资金到位), integer fen."""

    __tablename__ = "fund_arrival"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    arrived_on: date
    amount_fen: int = _fen()
    note: str = Field(default="", max_length=500)


class Disbursement(SQLModel, table=True):
    """A payment to a unit (拨付/支出), integer fen. ``key`` identifies it across reloads."""

    __tablename__ = "disbursement"  # type: ignore[assignment]

    __table_args__ = (
        UniqueConstraint("project_id", "key"),
        # the ledger's order (paid date, key) walked without a sort, and the project's payment
        # count and sum read from the index alone (store.answers.ledger_page, payment_counts)
        Index("ix_disbursement_ledger", "project_id", "paid_on", "key", "amount_fen"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    key: str = Field(max_length=100)
    batch: str = Field(default="", max_length=50)
    amount_fen: int = _fen()
    paid_on: date
    voucher: str = Field(default="", max_length=100)
    created_at: datetime
    updated_at: datetime


# ============================================================================ survey


class Questionnaire(SQLModel, table=True):
    """A questionnaire version; ``definition`` holds questions, scale, satisfied levels, method."""

    __tablename__ = "questionnaire"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    version: int
    title: str = Field(max_length=200)
    definition: dict[str, Any] = _json()
    created_at: datetime


class Campaign(SQLModel, table=True):
    """One round of asking: questionnaire + audience + window + reminder policy.

    ``status``: draft → open → closed. ``policy`` holds the reminder policy
    (min_days_between, max_reminders, quiet_hours) as JSON.
    """

    __tablename__ = "campaign"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    questionnaire_id: int | None = Field(default=None, foreign_key="questionnaire.id")
    name: str = Field(max_length=200)
    status: str = Field(default="draft", max_length=20)
    opens_at: datetime
    closes_at: datetime
    ask_confirmations: bool = True
    policy: dict[str, Any] = _json()
    #: the audience: unit ids chosen at creation (None = every active unit at launch time)
    unit_ids: list[int] | None = Field(default=None, sa_column=Column(JsonDoc, nullable=True))
    created_at: datetime
    launched_at: datetime | None = None
    closed_at: datetime | None = None


class Link(SQLModel, table=True):
    """A unit's personal link in a campaign. Only the SHA-256 of the token is stored; the token
    is re-derived from the server secret and ``token_salt`` when a message needs the URL.

    Lifecycle timestamps record sent → opened → answered/confirmed. A revoked link keeps its row
    (``revoked_at``) and a reissued one is a new row (history kept).
    """

    __tablename__ = "link"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    #: random salt; the token is HMAC(server secret, salt), so the database alone cannot rebuild it
    token_salt: str = Field(max_length=64)
    created_at: datetime
    revoked_at: datetime | None = None
    sent_at: datetime | None = None
    opened_at: datetime | None = None
    answered_at: datetime | None = None
    confirmed_at: datetime | None = None
    reminder_count: int = 0
    last_reminded_at: datetime | None = None


class Response(SQLModel, table=True):
    """One submitted questionnaire (a version). Exactly one ``is_current`` per (project, unit,
    questionnaire); earlier versions are kept. ``satisfaction`` denormalises the satisfaction
    question's label so the fact can be aggregated in SQL.
    ``submission_key`` makes a double submit idempotent."""

    __tablename__ = "response"  # type: ignore[assignment]

    __table_args__ = (
        Index("ix_response_current", "project_id", "is_current", "satisfaction"),
        # One unit's versions (the last one, the current one, the latest in a campaign): a
        # submit and a page read touch a handful of rows instead of every response of the
        # project or campaign. Its three equality columns make SQLite choose it without
        # statistics (ix_response_current matches two). Unique: a version is stored once, which
        # the unit page's one-statement submit on PostgreSQL relies on (store.linkpage).
        Index(
            "uq_response_unit_versions", "project_id", "unit_id", "questionnaire_id", "version", unique=True
        ),
        UniqueConstraint("submission_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    questionnaire_id: int | None = Field(default=None, foreign_key="questionnaire.id")
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    link_id: int | None = Field(default=None, foreign_key="link.id")
    version: int = 1
    is_current: bool = True
    source: str = Field(default="link", max_length=20)
    submission_key: str = Field(max_length=64)
    satisfaction: str | None = Field(default=None, max_length=20)
    submitted_at: datetime


class Answer(SQLModel, table=True):
    """One question's answer inside a response; ``value`` is JSON (str, number, list)."""

    __tablename__ = "answer"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="response.id", index=True)
    question_key: str = Field(max_length=64)
    value: Any = Field(default=None, sa_column=Column(JsonDoc, nullable=True))


class PaymentConfirmation(SQLModel, table=True):
    """A unit's confirmation or dispute of one disbursement (versioned like responses).

    ``status``: confirmed | disputed. ``dispute_kind``: not_received | amount_differs.
    A confirmed ``amount_fen`` different from the disbursement is a discrepancy.
    """

    __tablename__ = "payment_confirmation"  # type: ignore[assignment]

    __table_args__ = (
        Index("ix_confirmation_current", "disbursement_id", "is_current"),
        # the payment states (store.answers.amount_differs) and their counts, index-only: a
        # state filter or count over a project's answers never reads the table
        Index("ix_confirmation_amounts", "project_id", "is_current", "status", "amount_fen", "expected_fen"),
        UniqueConstraint("submission_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    disbursement_id: int = Field(foreign_key="disbursement.id", index=True)
    unit_id: int = Field(foreign_key="unit.id")
    link_id: int | None = Field(default=None, foreign_key="link.id")
    version: int = 1
    is_current: bool = True
    status: str = Field(max_length=20)
    received_on: date | None = None
    amount_fen: int | None = Field(default=None, sa_type=BigInteger)
    #: the disbursement's amount this answer is compared with: the one shown when the unit
    #: answered, moved with the ledger when the amount is corrected (store.answers
    #: .follow_disbursed_amounts); discrepancy = confirmed amount ≠ this. Kept on the row so the
    #: payment states need no join (store.answers.amount_differs); ``amount_fen`` is never rewritten
    expected_fen: int | None = Field(default=None, sa_type=BigInteger)
    voucher: str = Field(default="", max_length=100)
    dispute_kind: str | None = Field(default=None, max_length=30)
    reason: str = Field(default="", max_length=1000)
    submission_key: str = Field(max_length=64)
    submitted_at: datetime


# ============================================================================ scores


class ScoreOverride(SQLModel, table=True):
    """An evaluator's manual score for one indicator, with the written reason. Append-only:
    the newest active row per (project, indicator_key) applies; ``active=False`` withdraws."""

    __tablename__ = "score_override"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    indicator_key: str = Field(max_length=64)
    score: Decimal | None = Field(default=None, sa_type=DecimalText)
    reason: str = Field(max_length=2000)
    by: str = Field(default="", max_length=100)
    active: bool = True
    created_at: datetime


class ScoreSnapshot(SQLModel, table=True):
    """Every computed table, kept with its time and definition version.

    ``fingerprint`` hashes the scored table (and facts) so a recompute that changes nothing can be
    skipped; ``table`` is the JSON of ``scoring.model.ScoreTable`` plus facts metadata.
    """

    __tablename__ = "score_snapshot"  # type: ignore[assignment]

    __table_args__ = (Index("ix_snapshot_project_time", "project_id", "computed_at"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    definition_version: int
    computed_at: datetime
    total: Decimal = Field(sa_type=DecimalText)
    grade: str = Field(max_length=10)
    fingerprint: str = Field(max_length=64)
    trigger: str = Field(default="manual", max_length=30)
    table: dict[str, Any] = _json()


# ============================================================================ access


class ApiToken(SQLModel, table=True):
    """An admin-API bearer token; only its SHA-256 is stored. ``role``: admin | coordinator."""

    __tablename__ = "api_token"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    role: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    #: sees every project (only set by an explicit ``--all-projects``); otherwise only the
    #: projects granted in ``project_grant`` — a token with no grant sees none
    all_projects: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class Account(SQLModel, table=True):
    """A person who logs in to the console. ``password_hash`` is argon2id (PHC string);
    ``role`` admin | coordinator; projects come from ``project_grant`` unless ``all_projects``."""

    __tablename__ = "account"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=20)
    password_hash: str = Field(max_length=200)
    all_projects: bool = False
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None = None


class ProjectGrant(SQLModel, table=True):
    """One project granted to one account or one API token (exactly one of the two is set)."""

    __tablename__ = "project_grant"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("project_id", "account_id", "token_id"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    token_id: int | None = Field(default=None, foreign_key="api_token.id", index=True)
    created_at: datetime


class ConsoleSession(SQLModel, table=True):
    """A server-side login session. The cookie carries a random token; only its SHA-256 is here.
    A session ends at ``expires_at`` (absolute), after ``idle`` without use, or when revoked
    (logout, password change, account disabled)."""

    __tablename__ = "console_session"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    client: str = Field(default="", max_length=64)


class LoginFailure(SQLModel, table=True):
    """A failed console login (for throttling per account and per client, across replicas)."""

    __tablename__ = "login_failure"  # type: ignore[assignment]

    __table_args__ = (
        Index("ix_login_failure_name_at", "account_name", "at"),
        Index("ix_login_failure_client_at", "client", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_name: str = Field(max_length=64)
    client: str = Field(max_length=64)
    at: datetime


class AuditEntry(SQLModel, table=True):
    """Every change made through the console: who, when, what (action + object + detail)."""

    __tablename__ = "audit_entry"  # type: ignore[assignment]

    __table_args__ = (Index("ix_audit_project_at", "project_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    actor: str = Field(max_length=100)
    action: str = Field(max_length=50)
    project_id: int | None = Field(default=None, foreign_key="project.id")
    object: str = Field(default="", max_length=200)
    detail: dict[str, Any] = _json()


# ============================================================================ delivery


class ChannelEndpoint(SQLModel, table=True):
    """A destination: one unit's chat/email address or one coordinator group robot.

    ``config`` holds non-secret settings (chat id, robot key reference, address); secrets are
    referenced by environment variable name (``secret_env``), never stored in clear text in logs.
    ``paused_until`` persists vendor throttling so a restart honours it; ``disabled_at`` is set
    after a permanent error for admins to see.
    """

    __tablename__ = "channel_endpoint"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("kind", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    address: str = Field(max_length=500)
    name: str = Field(default="", max_length=200)
    config: dict[str, Any] = _json()
    paused_until: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str = Field(default="", max_length=500)
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    #: The project whose admin added this coordinator endpoint in the console (None: registered
    #: by a send): makes it visible to that project's accounts before any message went to it.
    project_id: int | None = Field(default=None, foreign_key="project.id")


class OutboxMessage(SQLModel, table=True):
    """Everything that leaves the process. Written in the same transaction as the fact it
    announces; ``dedupe_key`` is unique so enqueueing twice is harmless.

    ``status``: pending → sending (leased) → sent | failed (permanent) | dead (gave up) | cancelled.
    """

    __tablename__ = "outbox_message"  # type: ignore[assignment]

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200, unique=True)
    endpoint_id: int = Field(foreign_key="channel_endpoint.id", index=True)
    kind: str = Field(max_length=20)
    project_id: int | None = Field(default=None, foreign_key="project.id")
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    #: indexed: a campaign's funnel and unit table look up each link's messages
    link_id: int | None = Field(default=None, foreign_key="link.id", index=True)
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=20)
    attempt_count: int = 0
    throttle_count: int = 0
    next_attempt_at: datetime
    not_after: datetime | None = None
    lease_until: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=64)
    last_outcome: str | None = Field(default=None, max_length=20)
    last_error: str = Field(default="", max_length=1000)
    vendor_msg_id: str | None = Field(default=None, max_length=200)
    created_at: datetime
    sent_at: datetime | None = None


class DeliveryAttempt(SQLModel, table=True):
    """One try at sending an outbox row; inserted as ``in_flight`` before the request."""

    __tablename__ = "delivery_attempt"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox_message.id", index=True)
    attempt_no: int
    worker_id: str = Field(default="", max_length=64)
    started_at: datetime
    finished_at: datetime | None = None
    latency_ms: int | None = None
    outcome: str = Field(default="in_flight", max_length=20)
    http_status: int | None = None
    vendor_code: str | None = Field(default=None, max_length=50)
    retry_after_s: float | None = None
    excerpt: str = Field(default="", max_length=2000)


# ============================================================================ schedules


class Schedule(SQLModel, table=True):
    """An admin-set schedule. ``kind``: launch | remind | close | recompute | summarise.
    ``params`` holds e.g. coordinator endpoint ids and quiet hours. ``version`` bumps on change."""

    __tablename__ = "schedule"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    project_id: int = Field(foreign_key="project.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id")
    cron: str = Field(max_length=100)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    enabled: bool = True
    grace_seconds: int = 3600
    params: dict[str, Any] = _json()
    version: int = 1
    created_at: datetime
    updated_at: datetime
    #: set by "remove": the row stays so its change log and runs keep their foreign key
    deleted_at: datetime | None = None


class ScheduleChange(SQLModel, table=True):
    """Audit of schedule edits: who, when, before → after (JSON)."""

    __tablename__ = "schedule_change"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    by: str = Field(default="", max_length=100)
    at: datetime
    action: str = Field(max_length=20)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonDoc, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonDoc, nullable=True))


class ScheduleRun(SQLModel, table=True):
    """A claimed fire. The unique (schedule_id, fire_time) makes each fire run once across
    replicas. ``status``: running | ok | failed | missed."""

    __tablename__ = "schedule_run"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("schedule_id", "fire_time"),)
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    fire_time: datetime
    status: str = Field(default="running", max_length=20)
    started_at: datetime
    finished_at: datetime | None = None
    error: str = Field(default="", max_length=4000)
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonDoc, nullable=True))


# ============================================================================ chat commands (inbound)


class ChatConnection(SQLModel, table=True):
    """A vendor group chat connected to a project by an admin. The connection IS the permission:
    anyone in a connected chat may ask the bot about its projects; disconnecting removes it."""

    __tablename__ = "chat_connection"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("vendor", "chat_id", "project_id"),)
    id: int | None = Field(default=None, primary_key=True)
    vendor: str = Field(max_length=20)
    chat_id: str = Field(max_length=200)
    project_id: int = Field(foreign_key="project.id", index=True)
    connected_at: datetime
    connected_by: str = Field(default="", max_length=100)


class SeenChat(SQLModel, table=True):
    """A chat the bot received a message from (connected or not): the first message is kept so
    an admin can pick the chat from a list instead of typing its id."""

    __tablename__ = "seen_chat"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("vendor", "chat_id"),)
    id: int | None = Field(default=None, primary_key=True)
    vendor: str = Field(max_length=20)
    chat_id: str = Field(max_length=200)
    title: str = Field(default="", max_length=200)
    first_seen_at: datetime
    last_seen_at: datetime
    first_text: str = Field(default="", max_length=200)
    first_sender: str = Field(default="", max_length=100)
    messages: int = 1


class InboundEvent(SQLModel, table=True):
    """One authenticated vendor event (a chat message). The unique (vendor, event_id) is what
    answers a replayed or re-pushed event once. ``outcome``: replied | help | unconnected |
    ignored (not a command, another bot's command, not a text message)."""

    __tablename__ = "inbound_event"  # type: ignore[assignment]

    __table_args__ = (UniqueConstraint("vendor", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    vendor: str = Field(max_length=20)
    event_id: str = Field(max_length=200)
    chat_id: str = Field(default="", max_length=200)
    command: str = Field(default="", max_length=20)
    outcome: str = Field(default="", max_length=20)
    received_at: datetime


# ============================================================================ operations


class Heartbeat(SQLModel, table=True):
    """One row per serving process, rewritten by ``/readyz``: proves a write commits."""

    __tablename__ = "heartbeat"  # type: ignore[assignment]

    name: str = Field(primary_key=True, max_length=100)
    beat_at: datetime


class RateBucket(SQLModel, table=True):
    """A vendor rate window shared by every replica (PostgreSQL): ``key`` names the bucket and its
    budget (``ep:12|18/60``); ``sends`` is the sliding log, the epoch seconds of the sends still
    inside the window, updated atomically by ``store.outbox.acquire_rate_slot``."""

    __tablename__ = "rate_bucket"  # type: ignore[assignment]

    key: str = Field(primary_key=True, max_length=200)
    sends: list[float] = Field(
        default_factory=list,
        sa_column=Column(JSON().with_variant(ARRAY(Double()), "postgresql"), nullable=False),
    )
