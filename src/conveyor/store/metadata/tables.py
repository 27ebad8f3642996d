"""The metadata schema (SQLAlchemy Core). Times are UTC unix seconds; JSON columns hold text.

Changing a table here needs an Alembic migration in ``migrations/versions/``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("executor", String(20), nullable=False),
    Column("git_commit", String(64)),
    Column("config_hash", String(64)),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("error", Text),
    Index("ix_runs_started_at", "started_at"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", JSON, nullable=True),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("cache_key", String(64)),
    Column("cached_from", Integer, ForeignKey("steps.id")),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("error", Text),
    Column("traceback", Text),
    Column("key_parts", JSON),  # the cache key's ingredients, for `conveyor run --explain`
    UniqueConstraint("run_id", "name"),
    Index("ix_steps_cache_key", "cache_key", "status"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Lineage edges: which step read or wrote which artifact, under which dataset name.
step_artifacts = Table(
    "step_artifacts",
    metadata,
    Column("step_id", Integer, ForeignKey("steps.id", ondelete="CASCADE"), primary_key=True),
    Column("direction", String(3), primary_key=True),  # "in" | "out"
    Column("name", String(200), primary_key=True),
    Column("digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Index("ix_step_artifacts_digest", "digest"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", Integer, ForeignKey("steps.id", ondelete="CASCADE")),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=False),
    Column("iteration", Integer, nullable=False, default=0),
    Column("logged_at", Float, nullable=False),
    Index("ix_metrics_run_key", "run_id", "key"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("source", Text, nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("n_columns", Integer, nullable=False),
    Column("schema_hash", String(64)),
    Column("digest", String(64), ForeignKey("artifacts.digest")),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("created_at", Float, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("dataset", String(64), ForeignKey("datasets.fingerprint")),
    Column("status", String(20), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("signature", JSON),
    Column("tags", JSON, nullable=False),
    Column("git_commit", String(64)),
    Column("config_hash", String(64)),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version", Integer),
    Column("previous_version", Integer),
    Column("action", String(20), nullable=False, server_default="promote"),  # or rollback
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("at", Float, nullable=False),
    Index("ix_alias_history_name_alias", "name", "alias"),
)

# Append-only audit log: who did what, when and why. Never updated, never deleted.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity", String(300), nullable=False),
    Column("reason", Text),
    Column("details", JSON, nullable=False),
    Index("ix_events_at", "at"),
)

# Hyper-parameter search trials, one row per trial of a candidate's tuning in a step.
trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", Integer, ForeignKey("steps.id", ondelete="CASCADE")),
    Column("candidate", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("value", Float),
    Column("params", JSON, nullable=False),
    Column("fold_scores", JSON, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("error", Text),
    Index("ix_trials_run", "run_id", "candidate"),
)

# API keys (model server and UI): only a salted hash of the secret part is stored. Scopes are
# space-separated names (records.KEY_SCOPES); keys made before scopes existed are predict keys.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", Float),
    Column("scopes", String(100), nullable=False, server_default="predict"),
    UniqueConstraint("name"),
)

# Index of the server's prediction log: one row per Parquet partition in the artifact store.
prediction_logs = Table(
    "prediction_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Column("n_rows", Integer, nullable=False),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_prediction_logs_model", "model_name", "last_at"),
)
