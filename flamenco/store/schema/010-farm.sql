-- Schema version 10: farm operations (failures, blocklist, task-log marks).

-- One row per (task, Worker that failed it): `failed_by_workers`, blocklist counts, quarantine.
CREATE TABLE task_failures (
    task_id    TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    identifier TEXT NOT NULL DEFAULT '',
    job_id     TEXT NOT NULL DEFAULT '',
    task_type  TEXT NOT NULL DEFAULT '',
    failed_at  REAL NOT NULL,
    PRIMARY KEY (task_id, worker_id)
) WITHOUT ROWID;
CREATE INDEX task_failures_by_worker ON task_failures (worker_id, job_id, task_type);

CREATE TABLE blocklist (
    worker_id TEXT NOT NULL,
    job_id    TEXT NOT NULL,
    task_type TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    created   REAL NOT NULL,
    expires   REAL NOT NULL,
    PRIMARY KEY (worker_id, job_id, task_type)
) WITHOUT ROWID;
CREATE INDEX blocklist_by_job ON blocklist (job_id, task_type);

-- How many bytes of each task's log file are committed, and the last Worker update's digest.
CREATE TABLE task_logs (
    task_id TEXT PRIMARY KEY,
    job_id  TEXT NOT NULL,
    length  INTEGER NOT NULL,
    digest  TEXT NOT NULL DEFAULT ''
);

-- Housekeeping never removes a task with queued updates (found by the index of schema 2).

-- Sick-worker quarantine: in force while `released` is NULL.
CREATE TABLE quarantine (
    worker_id TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    since     REAL NOT NULL,
    released  REAL
);

-- Sleep schedules (days: space-separated two-letter days; times HH:MM or empty).
CREATE TABLE sleep_schedules (
    worker_id  TEXT PRIMARY KEY,
    active     INTEGER NOT NULL,
    days       TEXT NOT NULL DEFAULT '',
    time_start TEXT NOT NULL DEFAULT '',
    time_end   TEXT NOT NULL DEFAULT '',
    next_check REAL
);
