-- Schema version 20: jobs submitted to the Manager itself (stand-alone mode).
-- `settings` is the submitted JSON object; a job's tasks are found by their document's `job`.
CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    type               TEXT NOT NULL,
    priority           INTEGER NOT NULL,
    status             TEXT NOT NULL,
    settings           TEXT NOT NULL,
    submitter_platform TEXT NOT NULL DEFAULT '',
    created            REAL NOT NULL,
    updated            REAL NOT NULL
);
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX tasks_by_job ON tasks (json_extract(doc, '$.job'), id);
