-- Schema version 3: Workers registered in `approve` mode wait for an operator; existing
-- Workers count as approved.
ALTER TABLE workers ADD COLUMN approved INTEGER NOT NULL DEFAULT 1;
