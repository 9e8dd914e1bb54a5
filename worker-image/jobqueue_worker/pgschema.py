"""The PostgreSQL schema as numbered migrations, applied in order by ``jobqueue db upgrade``.

Each migration is applied once, in its own transaction, and recorded in
``jobqueue_schema``; a migration already shipped is never edited (a change is a
new number). Plain strings, no database library: ``pgstore`` runs them.
"""

from __future__ import annotations

# Channel the migrator LISTENs on; NOTIFY is delivered only when the inserting
# transaction commits, so a rolled-back enqueue never wakes anyone.
NOTIFY_CHANNEL = "jobqueue_jobs"

# Every status a row can have. ``migrated`` means the job is in Redis and no
# worker has reported on it yet.
STATUSES = (
    "queued",
    "migrated",
    "running",
    "retry_scheduled",
    "completed",
    "failed",
    "dead",
    "purged",
)
TERMINAL = ("completed", "failed", "dead", "purged")

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "jobs and job_attempts",
        f"""
CREATE TABLE jobs (
    id                 text PRIMARY KEY,
    queue              text NOT NULL,
    type               text NOT NULL,
    priority           smallint NOT NULL CHECK (priority BETWEEN 1 AND 10),
    envelope           text NOT NULL,
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    attempt_count      integer NOT NULL DEFAULT 0,
    max_attempts       integer,
    idempotency_key    text,
    run_at             timestamptz NOT NULL DEFAULT now(),
    last_error_message text,
    worker_id          text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    migrated_at        timestamptz,
    started_at         timestamptz,
    finished_at        timestamptz,
    failed_at          timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- The migrator's claim: only queued rows, in due order (a partial index stays small).
CREATE INDEX jobs_queued_due ON jobs (run_at, id) WHERE status = 'queued';
-- The reconciler's scan of rows Redis may know more about.
CREATE INDEX jobs_open_updated ON jobs (updated_at)
    WHERE status IN ('migrated', 'running', 'retry_scheduled');
-- History listings and retention by status and age.
CREATE INDEX jobs_status_updated ON jobs (status, updated_at);
CREATE INDEX jobs_queue_created ON jobs (queue, created_at DESC);
-- A transactional enqueue with a key seen before returns the first job.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_attempts (
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker_id   text,
    started_at  timestamptz,
    finished_at timestamptz,
    outcome     text NOT NULL,
    error       text,
    duration_ms integer,
    PRIMARY KEY (job_id, attempt)
);

CREATE FUNCTION jobqueue_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END $$;
-- Once per statement, not per row: a batch insert wakes the migrator once.
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_notify_jobs();
""",
    ),
    (
        2,
        "job_attempts.traceback",
        # Nullable, no default: adding it rewrites nothing and locks the table only
        # for the catalogue change.
        "ALTER TABLE job_attempts ADD COLUMN traceback text;",
    ),
    (
        3,
        "job_attempts without a foreign key",
        # The key's check ran a trigger per inserted attempt, about a sixth of the
        # PostgreSQL CPU a worker's write-back costs per job. Nothing needs it: the
        # write-back inserts attempts only for rows that exist, and ``db prune``
        # deletes a row's attempts in the statement that deletes the row.
        "ALTER TABLE job_attempts DROP CONSTRAINT IF EXISTS job_attempts_job_id_fkey;",
    ),
)

LATEST = MIGRATIONS[-1][0]

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS jobqueue_schema (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

# Serializes concurrent `db upgrade` runs (two replicas starting at once).
UPGRADE_LOCK_KEY = 0x6A6F6271  # "jobq"
