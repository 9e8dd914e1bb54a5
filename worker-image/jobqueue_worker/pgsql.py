"""The SQL the store runs, as plain strings (no database library; ``pgstore`` runs them).

Kept apart from ``pgstore`` so the statements can be read, and reviewed against
the schema in ``pgschema``, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobqueue_worker.pgevents import ATTEMPT_OUTCOME, EVENT_RANK, TERMINAL_EVENTS

VERSION_SQL = "SELECT max(version) AS v FROM jobqueue_schema"

# -------------------------------------------------------------- transactional enqueue
INSERT = """
INSERT INTO jobs (id, queue, type, priority, envelope, max_attempts, idempotency_key, run_at)
VALUES (%(id)s, %(queue)s, %(type)s, %(priority)s, %(envelope)s, %(max_attempts)s,
        %(idem)s, COALESCE(%(run_at)s::timestamptz,
                           now() + make_interval(secs => %(delay_s)s::float8)))
ON CONFLICT DO NOTHING
RETURNING id
"""

EXISTING = """
SELECT id FROM jobs WHERE id = %(id)s
   OR (queue = %(queue)s AND idempotency_key = %(idem)s::text)
ORDER BY created_at LIMIT 1
"""

# -------------------------------------------------------------- status write-back SQL
# The write-back passes its columns as arrays in binary (``%b``): psycopg dumps a
# text array element by element with a regular expression for the quoting, which
# cost the worker about five times the CPU per event of the binary format.
RANK = "CASE WHEN {0} IN ('queued', 'migrated') THEN 0 WHEN {0} = 'running' THEN 1 ELSE 2 END"

OUTCOME_RANK = "CASE WHEN {0} IN ('running', 'handed_back') THEN 1 ELSE 2 END"


def _case(column: str, mapping: Mapping[str, object]) -> str:
    """A CASE over ``column`` built from a Python mapping, so the two cannot disagree."""
    arms = " ".join(f"WHEN '{key}' THEN {value!r}" for key, value in mapping.items())
    return f"CASE {column} {arms} END"


# One statement per batch, its arrays dumped once: the rows of ``e`` are each
# attempt's furthest event (``pgevents.collapse``). The CTE moves each jobs row to
# its newest attempt's event, forward only, since (attempt, rank) never goes back,
# so a repeated or late event is a no-op; the INSERT records every attempt of a job
# that has a row. A row the CTE moved exists, so only the others (a late event for
# an attempt the row has passed) are looked up in ``jobs`` again. Rank, outcome and
# finish time derive from the status here rather than travelling as arrays of
# their own: every array costs the worker a dump per event.
APPLY_EVENTS = f"""
WITH e AS (
    SELECT e.*, {_case("e.status", EVENT_RANK)} AS rank
    FROM unnest(%b::text[], %b::int[], %b::text[], %b::text[], %b::float8[], %b::float8[],
                %b::text[], %b::int[], %b::text[])
         AS e(id, attempt, status, worker, at, started, error, duration_ms, traceback)
), moved AS (
    UPDATE jobs j SET
        status = x.status,
        attempt_count = x.attempt,
        worker_id = NULLIF(x.worker, ''),
        -- the start of the attempt the row moves to: a finish carries it too, so a
        -- job that ended before its running event was sent still has its start
        started_at = COALESCE(to_timestamp(x.started), j.started_at),
        finished_at = CASE WHEN x.status IN ({", ".join(f"'{t}'" for t in sorted(TERMINAL_EVENTS))})
                      THEN to_timestamp(x.at) ELSE j.finished_at END,
        updated_at = now()
    FROM (SELECT DISTINCT ON (id) * FROM e ORDER BY id, attempt DESC) x
    WHERE j.id = x.id AND j.status <> 'purged'
      AND (j.attempt_count, {RANK.format("j.status")}) <= (x.attempt, x.rank)
    RETURNING j.id
)
INSERT INTO job_attempts AS a
    (job_id, attempt, worker_id, started_at, finished_at, outcome, error, duration_ms, traceback)
SELECT e.id, e.attempt, NULLIF(e.worker, ''), to_timestamp(COALESCE(e.started, e.at)),
       CASE WHEN e.status = 'running' THEN NULL ELSE to_timestamp(e.at) END,
       {_case("e.status", ATTEMPT_OUTCOME)}, e.error, e.duration_ms, e.traceback
FROM e
-- the lookup is a scalar subquery so that it runs per row, and only when the row
-- was not moved: an EXISTS under OR may be planned as a hash of the whole table
WHERE e.id IN (SELECT id FROM moved) OR (SELECT true FROM jobs WHERE jobs.id = e.id)
ORDER BY e.id, e.attempt
ON CONFLICT (job_id, attempt) DO UPDATE SET
    worker_id = excluded.worker_id,
    started_at = CASE WHEN excluded.outcome = 'running' THEN excluded.started_at
                 ELSE a.started_at END,
    finished_at = excluded.finished_at,
    outcome = excluded.outcome,
    error = excluded.error,
    duration_ms = excluded.duration_ms,
    traceback = excluded.traceback
WHERE {OUTCOME_RANK.format("a.outcome")} <= {OUTCOME_RANK.format("excluded.outcome")}
"""

# Failures are ordered by their own time: attempts on different workers may
# report out of order, and the last error must not be lost to a later success.
# A statement of its own, after APPLY_EVENTS: one statement must not update a
# jobs row twice.
APPLY_FAILURES = """
UPDATE jobs j SET last_error_message = e.error, failed_at = to_timestamp(e.at)
FROM unnest(%b::text[], %b::text[], %b::float8[]) AS e(id, error, at)
WHERE j.id = e.id AND j.status <> 'purged'
  AND (j.failed_at IS NULL OR j.failed_at <= to_timestamp(e.at))
"""

CLAIM = """
SELECT id, queue, priority, max_attempts, envelope FROM jobs
WHERE status = 'queued' AND run_at <= now()
ORDER BY run_at, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

MARK_MIGRATED = """
UPDATE jobs SET status = 'migrated', migrated_at = now(), updated_at = now()
WHERE id = ANY(%s) AND status = 'queued'
"""

NEXT_DUE = "SELECT EXTRACT(EPOCH FROM min(run_at) - now()) FROM jobs WHERE status = 'queued'"

# Touching updated_at moves a checked row to the back of the scan.
OPEN_ROWS = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE status IN ('migrated', 'running', 'retry_scheduled')
      AND updated_at < now() - make_interval(secs => %s::float8)
    ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET updated_at = now() FROM picked WHERE j.id = picked.id
RETURNING j.id, j.queue
"""

REPLAYED = """
UPDATE jobs SET status = 'queued', attempt_count = 0, last_error_message = NULL,
    finished_at = NULL, failed_at = NULL, run_at = now(), updated_at = now()
WHERE id = ANY(%s) AND status IN ('dead', 'failed')
"""

PURGED = "UPDATE jobs SET status = 'purged', updated_at = now() WHERE id = ANY(%s)"

# A row and its attempts go in one statement (job_attempts has no foreign key
# since migration 3); the count is of jobs rows, the outer statement's.
PRUNE = """
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE status = ANY(%s) AND updated_at < now() - make_interval(secs => %s)
        LIMIT %s FOR UPDATE SKIP LOCKED)
    RETURNING id
), attempts AS (
    DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) AS deleted FROM gone
"""
