-- Schema version 1 of the embedded store.
-- Times are REAL Unix seconds (UTC); documents are JSON text.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires REAL NOT NULL
);

CREATE TABLE workers (
    id                  TEXT PRIMARY KEY,
    secret_hash         BLOB NOT NULL,
    nickname            TEXT NOT NULL DEFAULT '',
    address             TEXT NOT NULL DEFAULT '',
    platform            TEXT NOT NULL DEFAULT '',
    supported_types     TEXT NOT NULL DEFAULT '[]',
    generation          TEXT NOT NULL DEFAULT '2.0',
    status              TEXT NOT NULL DEFAULT '',
    status_requested    TEXT NOT NULL DEFAULT '',
    lazy_status_request INTEGER NOT NULL DEFAULT 0,
    current_task        TEXT,
    last_activity       REAL,
    software            TEXT NOT NULL DEFAULT ''
);

-- The Server's document lives in `doc` (without status/activity/worker, which change locally
-- and have their own columns). `schedule_type` = task_type, or job_type when that is empty.
-- `unfinished_parents` counts parents present locally whose status is not `completed`; the
-- triggers below keep it current, so picking the next task is one index seek.
CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    doc                TEXT NOT NULL,
    status             TEXT NOT NULL,
    activity           TEXT NOT NULL DEFAULT '',
    worker             TEXT NOT NULL DEFAULT '',
    schedule_type      TEXT NOT NULL,
    job_priority       INTEGER NOT NULL DEFAULT 0,
    priority           INTEGER NOT NULL DEFAULT 0,
    unfinished_parents INTEGER NOT NULL DEFAULT 0,
    worker_id          TEXT,
    last_worker_ping   REAL,
    last_updated       REAL
);

CREATE INDEX tasks_schedulable ON tasks (schedule_type, job_priority DESC, priority DESC, id)
    WHERE status IN ('queued', 'claimed-by-manager', 'soft-failed') AND unfinished_parents = 0;
CREATE INDEX tasks_by_worker ON tasks (worker_id, status);
CREATE INDEX tasks_active_by_ping ON tasks (last_worker_ping) WHERE status = 'active';

CREATE TABLE task_parents (
    child  TEXT NOT NULL,
    parent TEXT NOT NULL,
    PRIMARY KEY (child, parent)
) WITHOUT ROWID;
CREATE INDEX task_parents_by_parent ON task_parents (parent);

-- A new task: count its unfinished known parents; if it is not completed itself, it now
-- blocks its known children (a parent unknown locally counted as completed until now).
CREATE TRIGGER task_inserted AFTER INSERT ON tasks
BEGIN
    UPDATE tasks SET unfinished_parents = (
        SELECT count(*) FROM task_parents tp JOIN tasks p ON p.id = tp.parent
        WHERE tp.child = NEW.id AND p.status != 'completed')
    WHERE id = NEW.id;
    UPDATE tasks SET unfinished_parents = unfinished_parents + 1
    WHERE NEW.status != 'completed'
      AND id IN (SELECT child FROM task_parents WHERE parent = NEW.id);
END;

CREATE TRIGGER task_completion_changed AFTER UPDATE OF status ON tasks
WHEN (OLD.status = 'completed') != (NEW.status = 'completed')
BEGIN
    UPDATE tasks
    SET unfinished_parents = unfinished_parents + (CASE WHEN NEW.status = 'completed' THEN -1 ELSE 1 END)
    WHERE id IN (SELECT child FROM task_parents WHERE parent = NEW.id);
END;

CREATE TRIGGER task_deleted AFTER DELETE ON tasks
BEGIN
    UPDATE tasks SET unfinished_parents = unfinished_parents - 1
    WHERE OLD.status != 'completed'
      AND id IN (SELECT child FROM task_parents WHERE parent = OLD.id);
    DELETE FROM task_parents WHERE child = OLD.id;
END;

-- The outgoing queue, in arrival order (`seq`); `doc` is the upstream form of the update.
CREATE TABLE task_updates (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    doc     TEXT NOT NULL
);
