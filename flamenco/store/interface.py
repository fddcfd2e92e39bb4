"""The Store: everything the Manager persists, in domain terms.

One interface, two implementations (`sqlite.SQLiteStore`, `mongo.MongoStore`), one contract
test-suite (`tests/store_contract.py`). Every method returns a Deferred. Datetimes are aware UTC.
"""

from datetime import datetime

from zope.interface import Attribute, Interface

from flamenco import statuses


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the operation; the request may be retried."""


class StoreUnusable(Exception):
    """`open()` found the configured database unusable as it is (a path that cannot be
    opened, a file that is not a database): trying again will not help."""


class IStore(Interface):
    description = Attribute("Human-readable location, e.g. 'sqlite:/var/lib/flamenco.db'.")
    availability = Attribute("The `Availability` every call reports to (lost / back log lines).")
    farm = Attribute("The farm-operations part, a `flamenco.store.farm.IFarmStore`.")

    def open():
        """Create or upgrade the schema / indexes. Fires when ready; fails with StoreUnusable
        when retrying cannot help, StoreUnavailable when it may."""

    def close():
        """Release connections. Fires when closed."""

    # -- settings --------------------------------------------------------------------------------
    def get_setting(key):
        """Fires with the stored string, or None."""

    def set_setting(key, value):
        """Store a string; None removes the setting."""

    # -- leases ----------------------------------------------------------------------------------
    def try_lease(name, holder, now, duration):
        """Fires True if `holder` now holds lease `name` until now+duration (timedelta): it was
        free, expired, or already held by `holder` (then it is extended). Guards work only one
        Manager sharing the database may do at a time."""

    # -- workers ---------------------------------------------------------------------------------
    def add_worker(worker):
        """Insert a new `documents.Worker`."""

    def get_worker(worker_id):
        """Fires with the Worker, or None."""

    def update_worker(worker_id, **changes):
        """Set the given Worker attributes. Fires True if the worker exists."""

    def count_workers():
        """Fires with the number of worker records, any status."""

    def list_workers():
        """Fires with all Workers, by ID."""

    # -- tasks -----------------------------------------------------------------------------------
    def store_server_tasks(docs, now):
        """Upsert Server task documents (already validated) by `_id`.

        Local bookkeeping (worker_id, last_worker_ping, worker_reported) is kept. The local
        status, activity and worker outlive the Server's copy as `statuses.local_status_prevails`
        decides: a locally `active` task whose copy still waits, and any task with updates
        still queued whose copy has the stored `_etag`. `last_updated` = now.
        """

    def get_task(task_id):
        """Fires with the Task, or None."""

    def claim_task(worker, now, resume_since=None):
        """Atomically pick a task for `worker` and bind it; fires with the Task (as bound) or None.

        First a task already `active` for this worker that it has not reported on since it was
        handed out at or after `resume_since` (it lost the answer, §5.1 step 5; a task it did
        report on is not handed out again: its result may still be on its way; nor is one handed
        out before `resume_since`, the Manager's start: the answer may have reached the worker
        just before a crash, and its reports be still on their way), else the best
        eligible one (§5.2-5.4): schedulable status, schedule type in the worker's supported
        types, every parent completed or unknown locally, not a task the worker failed nor one
        of a (job, type) it is blocklisted for (`farm`); ordered by job_priority desc,
        priority desc, _id asc. The chosen task becomes `active` with worker_id = worker.id,
        last_worker_ping = now, worker = worker.identifier and worker_reported cleared. No
        update is queued: the caller
        queues one once the Server confirmed the task (refetch)."""

    def set_task_status(task_id, status, only_from=None):
        """Direct local status write with no update queued (Server cancel of an active task,
        refetch says gone). With `only_from` (a collection of statuses), only a task currently
        in one of them changes. Fires True if the task was changed."""

    def ping_task(task_id, worker_id, now):
        """Record a sign of life: last_worker_ping = now, worker_id = worker_id; the worker
        has reported on the task (worker_reported)."""

    def tasks_of_worker(worker_id, status):
        """Fires with the Tasks bound to the worker that have the given status."""

    def stale_active_tasks(cutoff):
        """Fires with the `active` tasks whose last_worker_ping is before cutoff or absent."""

    def count_tasks():
        """Fires with the number of local tasks, any status."""

    def erase_tasks():
        """Delete every local task (cleanslate). Fires with the number deleted."""

    # -- the outgoing update queue ---------------------------------------------------------------
    def queue_update(update, worker_id=None, ping=None, from_worker=False, log_mark=None):
        """Durably queue a `documents.TaskUpdate` and apply it to the local task in one step:

        status per §4.3 (kept when `cancel-requested` and the new one does not end the task),
        activity and worker when non-empty, last_updated = received_on_manager, plus worker_id
        and last_worker_ping when given; worker_reported when `from_worker` (the bound Worker
        sent it). An update for an unknown task is still queued.
        `log_mark` (a `farm.LogMark`), when given, becomes the task's log mark with the
        update: in its transaction on SQLite, right after it on MongoDB, so that a Worker's
        re-send of an update that was queued is recognised (`task_logs`).
        Fires once it is on disk."""

    def queued_updates(limit):
        """Fires with up to `limit` queued TaskUpdates, oldest first."""

    def count_queued_updates():
        """Fires with the queue length."""

    def ack_updates(update_ids):
        """Remove exactly these updates from the queue. Fires with the number removed."""

    def purge_queue():
        """Delete every queued update (purgequeue). Fires with the number deleted."""

    # -- the operator view (flamenco/store/*_views.py) -------------------------------------------
    def list_tasks(status=None, task_type=None, job=None, offset=0, limit=50):
        """Fires with (Tasks ordered by ID, total matching) for the given filters (None = any);
        `task_type` is the schedule type (task_type, else job_type)."""

    def task_counts():
        """Fires with [(status, schedule type, count)] over all local tasks, sorted."""

    def delete_worker(worker_id):
        """Remove a Worker record with its blocklist entries, quarantine and sleep schedule (an
        operator forgot it, or clean-up removed it). Fires True if it existed."""


def task_changes_for_update(update, current_status: str, worker_id: str | None,
                            ping: datetime | None, from_worker: bool = False) -> dict:
    """How queueing `update` changes the local task (§4.3), as field -> stored value (times in
    Unix seconds). Shared by the stores so the rule lives in one place."""
    changes: dict = {"last_updated": update.received_on_manager.timestamp()}
    if update.task_status and statuses.status_change_allowed(current_status, update.task_status):
        changes["status"] = update.task_status
    if update.activity:
        changes["activity"] = update.activity
    if update.worker:
        changes["worker"] = update.worker
    if worker_id is not None:
        changes["worker_id"] = worker_id
    if ping is not None:
        changes["last_worker_ping"] = ping.timestamp()
    if from_worker:
        changes["worker_reported"] = 1
    return changes
