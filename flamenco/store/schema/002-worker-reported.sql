-- Schema version 2: what keeps a finished task from being handed out again.
-- `worker_reported`: the bound Worker reported on the task (an update or a may-i-run) since
-- it was handed out, so it did not lose it (§5.1 step 5 re-hands only a task never reported).
-- The update queue by task: whether a task still has updates the Server has not acknowledged.
ALTER TABLE tasks ADD COLUMN worker_reported INTEGER NOT NULL DEFAULT 0;
CREATE INDEX task_updates_by_task ON task_updates (task_id);
