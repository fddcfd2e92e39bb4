"""The Store contract: one test class, run unchanged against every IStore implementation.

A backend's test module subclasses `StoreContract` and `TestCase` and defines
`async def make_store(self)` returning an opened, empty store.
"""

from datetime import timedelta

from zope.interface.verify import verifyObject

from flamenco import statuses
from flamenco.ids import new_object_id
from flamenco.store.interface import IStore
from tests.factories import JOB_ID, T0, task_doc, update, worker


class StoreContract:
    async def make_store(self):
        raise NotImplementedError

    async def reopen(self, store):
        """The same database through a new store object, as after a Manager restart."""
        raise NotImplementedError

    async def store(self):
        store = await self.make_store()
        self.addCleanup(store.close)
        return store

    async def test_provides_interface(self):
        self.assertTrue(verifyObject(IStore, await self.store()))

    # -- settings and leases -------------------------------------------------------------------
    async def test_settings_round_trip_and_removal(self):
        store = await self.store()
        self.assertIsNone(await store.get_setting("last_updated"))
        await store.set_setting("last_updated", "2018-01-10T09:15:02.481000+00:00")
        await store.set_setting("last_updated", "2018-01-10T09:15:03.000000+00:00")
        self.assertEqual(
            await store.get_setting("last_updated"), "2018-01-10T09:15:03.000000+00:00"
        )
        await store.set_setting("last_updated", None)
        self.assertIsNone(await store.get_setting("last_updated"))

    async def test_lease_is_exclusive_until_it_expires(self):
        store = await self.store()
        ttl = timedelta(seconds=10)
        self.assertTrue(await store.try_lease("push", "manager-a", T0, ttl))
        self.assertFalse(await store.try_lease("push", "manager-b", T0 + timedelta(seconds=5), ttl))
        self.assertTrue(await store.try_lease("push", "manager-a", T0 + timedelta(seconds=5), ttl))
        self.assertFalse(
            await store.try_lease("push", "manager-b", T0 + timedelta(seconds=14), ttl))
        self.assertTrue(await store.try_lease("push", "manager-b", T0 + timedelta(seconds=16), ttl))
        self.assertTrue(await store.try_lease("download", "manager-a", T0, ttl))

    # -- workers -------------------------------------------------------------------------------
    async def test_worker_round_trip_and_update(self):
        store = await self.store()
        w = worker(types=("sleep", "blender-render"))
        await store.add_worker(w)
        self.assertEqual(await store.get_worker(w.id), w)
        self.assertTrue(
            await store.update_worker(
                w.id, status="awake", last_activity=T0, status_requested="asleep",
                lazy_status_request=True, supported_types=("sleep",),
            )
        )
        got = await store.get_worker(w.id)
        self.assertEqual(
            (got.status, got.last_activity, got.status_requested, got.lazy_status_request,
             got.supported_types),
            ("awake", T0, "asleep", True, ("sleep",)),
        )
        self.assertFalse(await store.update_worker(new_object_id(), status="awake"))
        self.assertIsNone(await store.get_worker(new_object_id()))
        self.assertEqual(await store.count_workers(), 1)
        self.assertEqual([x.id for x in await store.list_workers()], [w.id])

    async def test_worker_approval_is_stored_and_can_be_granted(self):
        store = await self.store()
        waiting, known = worker(approved=False), worker()
        await store.add_worker(waiting)
        await store.add_worker(known)
        self.assertEqual([(await store.get_worker(w.id)).approved for w in (waiting, known)],
                         [False, True])
        self.assertTrue(await store.update_worker(waiting.id, approved=True))
        self.assertTrue((await store.get_worker(waiting.id)).approved)

    # -- tasks ---------------------------------------------------------------------------------
    async def test_server_task_round_trip_keeps_every_field(self):
        store = await self.store()
        doc = task_doc(task_type="file-management")
        doc["_created"] = "Wed, 10 Jan 2018 09:15:02 GMT"
        doc["activity"] = "queued by server"
        await store.store_server_tasks([doc], T0)
        task = await store.get_task(doc["_id"])
        self.assertEqual(task.doc, doc)
        self.assertEqual(task.last_updated, T0)
        self.assertIsNone(task.worker_id)
        self.assertEqual(await store.count_tasks(), 1)

    async def test_claim_order_is_job_priority_then_priority_then_oldest_id(self):
        store = await self.store()
        ids = sorted(new_object_id() for _ in range(5))
        docs = [
            task_doc(ids[0], job_priority=50, priority=50),
            task_doc(ids[1], job_priority=60, priority=10),
            task_doc(ids[2], job_priority=60, priority=20),
            task_doc(ids[3], job_priority=60, priority=20),
            task_doc(ids[4], job_priority=10, priority=99),
        ]
        await store.store_server_tasks(docs, T0)
        order = []
        for _ in docs:
            w = worker()
            await store.add_worker(w)
            order.append((await store.claim_task(w, T0)).id)
        self.assertEqual(order, [ids[2], ids[3], ids[1], ids[0], ids[4]])
        self.assertIsNone(await store.claim_task(worker(), T0))

    async def test_claim_order_holds_over_a_hundred_tasks(self):
        store = await self.store()
        docs = [task_doc(job_priority=n % 3, priority=(n * 7) % 10) for n in range(100)]
        await store.store_server_tasks(docs, T0)
        expected = sorted(docs, key=lambda d: (-d["job_priority"], -d["priority"], d["_id"]))
        w = worker()
        claimed = []
        while (task := await store.claim_task(w, T0)) is not None:
            claimed.append(task.id)
            await store.queue_update(update(task.id, task_status="completed"))
        self.assertEqual(claimed, [d["_id"] for d in expected])

    async def test_claim_binds_the_task_to_the_worker(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        task = await store.claim_task(w, T0 + timedelta(seconds=3))
        self.assertEqual(
            (task.id, task.status, task.worker_id, task.last_worker_ping, task.worker),
            (doc["_id"], "active", w.id, T0 + timedelta(seconds=3), w.identifier),
        )
        self.assertEqual((await store.get_task(doc["_id"])).status, "active")

    async def test_claim_resumes_the_workers_own_active_task_first(self):
        store = await self.store()
        low, high = task_doc(priority=1), task_doc(priority=99)
        await store.store_server_tasks([low], T0)
        w = worker()
        self.assertEqual((await store.claim_task(w, T0)).id, low["_id"])
        await store.store_server_tasks([high], T0)
        self.assertEqual((await store.claim_task(w, T0)).id, low["_id"])

    async def test_claim_filters_on_task_type_else_job_type(self):
        store = await self.store()
        render = task_doc(job_type="blender-render", task_type="blender-render", priority=90)
        merge = task_doc(job_type="blender-render", task_type="exr-merge", priority=80)
        sleep = task_doc(job_type="sleep", priority=10)
        await store.store_server_tasks([render, merge, sleep], T0)
        self.assertEqual((await store.claim_task(worker(types=("sleep",)), T0)).id, sleep["_id"])
        self.assertIsNone(await store.claim_task(worker(types=("sleep",)), T0))
        merger = worker(types=("exr-merge", "video-encoding"))
        self.assertEqual((await store.claim_task(merger, T0)).id, merge["_id"])
        self.assertIsNone(await store.claim_task(worker(types=()), T0))

    async def test_only_schedulable_statuses_are_claimed(self):
        store = await self.store()
        docs = {status: task_doc(status=status) for status in statuses.TASK_STATUSES}
        await store.store_server_tasks(list(docs.values()), T0)
        claimed = set()
        while (task := await store.claim_task(worker(), T0)) is not None:
            claimed.add(task.id)
        self.assertEqual(claimed, {docs[s]["_id"] for s in statuses.SCHEDULABLE})

    async def test_parents_must_be_completed_or_unknown(self):
        store = await self.store()
        parent = task_doc(priority=1)
        child = task_doc(priority=99, parents=[parent["_id"]])
        orphan = task_doc(priority=50, parents=[new_object_id()])
        await store.store_server_tasks([child, orphan], T0)
        # The parent is unknown here: it counts as completed.
        await store.store_server_tasks([parent], T0)
        # Now it is known and not completed: the child waits.
        w = worker()
        self.assertEqual((await store.claim_task(w, T0)).id, orphan["_id"])
        self.assertEqual((await store.claim_task(worker(), T0)).id, parent["_id"])
        self.assertIsNone(await store.claim_task(worker(), T0))
        await store.queue_update(update(parent["_id"], task_status="completed"))
        self.assertEqual((await store.claim_task(worker(), T0)).id, child["_id"])

    async def test_parent_that_leaves_completed_blocks_again(self):
        store = await self.store()
        parent = task_doc(status="completed")
        child = task_doc(parents=[parent["_id"]])
        await store.store_server_tasks([parent, child], T0)
        await store.set_task_status(parent["_id"], "claimed-by-manager")
        claimed = await store.claim_task(worker(), T0)
        self.assertEqual(claimed.id, parent["_id"])
        self.assertIsNone(await store.claim_task(worker(), T0))

    async def test_diamond_dependencies(self):
        store = await self.store()
        top = task_doc()
        left, right = task_doc(parents=[top["_id"]]), task_doc(parents=[top["_id"]])
        bottom = task_doc(parents=[left["_id"], right["_id"]])
        await store.store_server_tasks([bottom, right, left, top], T0)
        waves = []
        while True:
            wave = []
            while (task := await store.claim_task(worker(), T0)) is not None:
                wave.append(task.id)
            if not wave:
                break
            waves.append(set(wave))
            for task_id in wave:
                await store.queue_update(update(task_id, task_status="completed"))
        self.assertEqual(
            waves, [{top["_id"]}, {left["_id"], right["_id"]}, {bottom["_id"]}]
        )

    async def test_server_copy_does_not_demote_a_locally_active_task(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        await store.claim_task(w, T0)
        await store.store_server_tasks([dict(doc, priority=10, _etag="etag-2")], T0)
        task = await store.get_task(doc["_id"])
        self.assertEqual((task.status, task.worker_id, task.priority, task.etag),
                         ("active", w.id, 10, "etag-2"))
        await store.store_server_tasks([dict(doc, status="cancel-requested")], T0)
        self.assertEqual((await store.get_task(doc["_id"])).status, "cancel-requested")

    async def test_lagging_server_copy_does_not_undo_a_reported_result_across_a_restart(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        await store.claim_task(w, T0)
        await store.queue_update(update(doc["_id"], task_status="completed", activity="done"),
                                 worker_id=w.id, ping=T0, from_worker=True)
        store = await self.reopen(store)
        # The Server never got the `completed`: its copy still says claimed, same _etag.
        await store.store_server_tasks([doc], T0 + timedelta(seconds=5))
        task = await store.get_task(doc["_id"])
        self.assertEqual((task.status, task.doc.get("activity")), ("completed", "done"))
        self.assertIsNone(await store.claim_task(w, T0 + timedelta(seconds=6)))
        self.assertIsNone(await store.claim_task(worker(), T0 + timedelta(seconds=6)))

    async def test_server_copy_with_a_new_etag_is_followed_despite_queued_updates(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        await store.claim_task(w, T0)
        await store.queue_update(update(doc["_id"], task_status="failed"),
                                 worker_id=w.id, ping=T0, from_worker=True)
        await store.store_server_tasks([dict(doc, status="queued", _etag="etag-2")], T0)
        self.assertEqual((await store.get_task(doc["_id"])).status, "queued")
        self.assertEqual((await store.claim_task(worker(), T0)).id, doc["_id"])

    async def test_server_copy_is_followed_once_the_updates_are_acknowledged(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        await store.claim_task(w, T0)
        u = update(doc["_id"], task_status="completed")
        await store.queue_update(u, worker_id=w.id, ping=T0, from_worker=True)
        await store.ack_updates([u.id])
        await store.store_server_tasks([dict(doc, status="failed")], T0)
        self.assertEqual((await store.get_task(doc["_id"])).status, "failed")

    async def test_claim_does_not_re_hand_a_task_the_worker_reported_on(self):
        store = await self.store()
        first, second = task_doc(priority=90), task_doc(priority=10)
        await store.store_server_tasks([first, second], T0)
        w, other = worker(), worker()
        self.assertEqual((await store.claim_task(w, T0)).id, first["_id"])
        # No report yet: the worker lost the answer, so it gets the same task again.
        self.assertEqual((await store.claim_task(w, T0)).id, first["_id"])
        await store.queue_update(update(first["_id"], activity="rendering"),
                                 worker_id=w.id, ping=T0, from_worker=True)
        self.assertEqual((await store.claim_task(w, T0)).id, second["_id"])
        # A may-i-run counts as a report too.
        await store.ping_task(second["_id"], w.id, T0)
        self.assertIsNone(await store.claim_task(w, T0))
        self.assertIsNone(await store.claim_task(other, T0))
        self.assertEqual((await store.get_task(first["_id"])).status, "active")

    async def test_claim_re_hands_only_tasks_handed_out_since_resume_since(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        self.assertEqual((await store.claim_task(w, T0)).id, doc["_id"])
        self.assertFalse((await store.get_task(doc["_id"])).worker_reported)
        later = T0 + timedelta(seconds=30)  # e.g. the Manager restarted
        self.assertIsNone(await store.claim_task(w, later, resume_since=later))
        self.assertEqual((await store.claim_task(w, later, resume_since=T0)).id, doc["_id"])
        await store.ping_task(doc["_id"], w.id, later)
        self.assertTrue((await store.get_task(doc["_id"])).worker_reported)

    async def test_set_status_ping_and_worker_queries(self):
        store = await self.store()
        a, b = task_doc(), task_doc()
        await store.store_server_tasks([a, b], T0)
        w = worker()
        await store.claim_task(w, T0)
        await store.claim_task(worker(), T0)
        await store.ping_task(a["_id"], w.id, T0 + timedelta(seconds=30))
        self.assertEqual([t.id for t in await store.tasks_of_worker(w.id, "active")], [a["_id"]])
        stale = await store.stale_active_tasks(T0 + timedelta(seconds=10))
        self.assertEqual([t.id for t in stale], [b["_id"]])
        self.assertTrue(await store.set_task_status(b["_id"], "cancel-requested"))
        self.assertFalse(await store.set_task_status(new_object_id(), "canceled"))
        self.assertFalse(await store.set_task_status(b["_id"], "canceled", only_from=("active",)))
        self.assertEqual((await store.get_task(b["_id"])).status, "cancel-requested")
        self.assertTrue(await store.set_task_status(
            b["_id"], "canceled", only_from=("active", "cancel-requested")))
        self.assertEqual((await store.get_task(b["_id"])).status, "canceled")
        self.assertEqual(await store.stale_active_tasks(T0 + timedelta(seconds=10)), [])
        self.assertEqual(await store.tasks_of_worker(w.id, "failed"), [])

    async def test_erase_tasks(self):
        store = await self.store()
        parent = task_doc()
        await store.store_server_tasks([parent, task_doc(parents=[parent["_id"]])], T0)
        self.assertEqual(await store.erase_tasks(), 2)
        self.assertEqual(await store.count_tasks(), 0)
        await store.store_server_tasks([task_doc(parents=[parent["_id"]])], T0)
        self.assertIsNotNone(await store.claim_task(worker(), T0))

    # -- update queue --------------------------------------------------------------------------
    async def test_queue_keeps_order_and_acks_exactly_the_handled_ids(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        updates = [update(doc["_id"], activity=f"step {n}", log=f"line {n}") for n in range(5)]
        for u in updates:
            await store.queue_update(u)
        self.assertEqual(await store.count_queued_updates(), 5)
        self.assertEqual(await store.queued_updates(3), updates[:3])
        self.assertEqual(
            await store.ack_updates([updates[0].id, updates[2].id, new_object_id()]), 2)
        self.assertEqual(await store.queued_updates(10), [updates[1], updates[3], updates[4]])
        self.assertEqual(await store.purge_queue(), 3)
        self.assertEqual(await store.queued_updates(10), [])

    async def test_queue_update_applies_status_activity_and_bookkeeping(self):
        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker()
        later = T0 + timedelta(minutes=1)
        await store.queue_update(
            update(doc["_id"], when=later, task_status="active", activity="rendering",
                   worker=w.identifier),
            worker_id=w.id, ping=later,
        )
        task = await store.get_task(doc["_id"])
        self.assertEqual(
            (task.status, task.doc["activity"], task.worker, task.worker_id,
             task.last_worker_ping, task.last_updated),
            ("active", "rendering", w.identifier, w.id, later, later),
        )

    async def test_cancel_requested_only_gives_way_to_an_ending_status(self):
        store = await self.store()
        doc = task_doc(status="cancel-requested")
        await store.store_server_tasks([doc], T0)
        await store.queue_update(update(doc["_id"], task_status="active"))
        self.assertEqual((await store.get_task(doc["_id"])).status, "cancel-requested")
        self.assertEqual(await store.count_queued_updates(), 1, "still forwarded")
        await store.queue_update(update(doc["_id"], task_status="canceled"))
        self.assertEqual((await store.get_task(doc["_id"])).status, "canceled")

    async def test_update_for_unknown_task_is_queued(self):
        store = await self.store()
        u = update(new_object_id(), task_status="canceled")
        await store.queue_update(u)
        self.assertEqual(await store.queued_updates(5), [u])

    async def test_update_round_trips_every_upstream_field(self):
        store = await self.store()
        u = update(new_object_id(), task_status="completed", activity="done",
                   task_progress_percentage=100, current_command_idx=2,
                   command_progress_percentage=100, log="a\nb", worker="w (n)",
                   metrics={"timing": {"render": 1.5}})
        await store.queue_update(u)
        self.assertEqual(await store.queued_updates(1), [u])

    # -- settings keyed by a Server URL (the gzip decision, upstream.gzip_choice) ------------
    async def test_settings_keyed_by_url_are_independent(self):
        store = await self.store()
        first, second = "gzip_refused_by:http://srv.example:8080/a.b", "gzip_refused_by:http://x"
        await store.set_setting(first, "1515575700.0")
        await store.set_setting(second, "1515575800.0")
        await store.set_setting(second, None)
        self.assertEqual(await store.get_setting(first), "1515575700.0")
        self.assertIsNone(await store.get_setting(second))

class FarmContract:
    """`store.farm` (flamenco.store.farm.IFarmStore) and how claims respect it."""

    async def test_farm_provides_interface(self):
        from flamenco.store.farm import IFarmStore

        self.assertTrue(verifyObject(IFarmStore, (await self.store()).farm))

    async def test_failures_are_recorded_once_per_worker_in_order(self):
        store = await self.store()
        task, other_job_task = task_doc(task_type="render"), task_doc(task_type="render",
                                                                       job=new_object_id())
        a, b = worker(), worker()
        farm = store.farm
        self.assertEqual(
            await farm.record_failure(task["_id"], a.id, "a", task["job"], "render", T0),
            [{"id": a.id, "identifier": "a"}])
        await farm.record_failure(task["_id"], a.id, "a", task["job"], "render",
                                  T0 + timedelta(seconds=1))
        failers = await farm.record_failure(task["_id"], b.id, "b", task["job"], "render",
                                            T0 + timedelta(seconds=2))
        self.assertEqual(failers, [{"id": a.id, "identifier": "a"},
                                   {"id": b.id, "identifier": "b"}])
        self.assertEqual(await farm.failers(task["_id"]), failers)
        await farm.record_failure(other_job_task["_id"], a.id, "a", other_job_task["job"],
                                  "render", T0 + timedelta(minutes=30))
        self.assertEqual(await farm.failed_tasks(a.id, task["job"], "render"), [task["_id"]])
        self.assertEqual(await farm.failed_tasks(a.id, task["job"], "sleep"), [])
        self.assertEqual(await farm.jobs_failed_since(a.id, T0 - timedelta(seconds=1)), 2)
        self.assertEqual(await farm.jobs_failed_since(a.id, T0 + timedelta(minutes=1)), 1)
        await farm.clear_failures(task["_id"])  # an operator re-queued it
        self.assertEqual(await farm.failers(task["_id"]), [])
        self.assertEqual(await farm.failed_tasks(a.id, task["job"], "render"), [])
        self.assertEqual(len(await farm.failers(other_job_task["_id"])), 1)

    async def test_blocklist_entries_expire_and_can_be_removed(self):
        from flamenco.store.farm import BlocklistEntry

        store = await self.store()
        farm = store.farm
        a, b = new_object_id(), new_object_id()
        job = new_object_id()
        week = timedelta(days=7)
        await farm.add_blocklist_entry(BlocklistEntry(a, job, "render", "first", T0, T0 + week))
        await farm.add_blocklist_entry(BlocklistEntry(a, job, "render", "again", T0, T0 + week))
        await farm.add_blocklist_entry(BlocklistEntry(b, job, "render", "b", T0,
                                                      T0 + timedelta(hours=1)))
        entries = await farm.blocklist(T0)
        self.assertEqual([(e.worker_id, e.reason) for e in entries],
                         sorted([(a, "again"), (b, "b")]))
        self.assertEqual(entries[0].created, T0)
        self.assertEqual(await farm.blocklisted_workers(job, "render", T0), {a, b})
        later = T0 + timedelta(hours=2)
        self.assertEqual(await farm.blocklisted_workers(job, "render", later), {a})
        self.assertEqual(await farm.blocklisted_workers(job, "sleep", T0), set())
        self.assertEqual(await farm.expire_blocklist(later), 1)
        self.assertTrue(await farm.remove_blocklist_entry(a, job, "render"))
        self.assertFalse(await farm.remove_blocklist_entry(a, job, "render"))
        self.assertEqual(await farm.blocklist(T0), [])

    async def test_claims_skip_failed_tasks_and_blocklisted_job_types(self):
        from flamenco.store.farm import BlocklistEntry

        store = await self.store()
        job, other_job = new_object_id(), new_object_id()
        failed = task_doc(job=job, task_type="render", priority=90)
        blocked = task_doc(job=job, task_type="render", priority=80)
        merge = task_doc(job=job, task_type="merge", priority=70)
        elsewhere = task_doc(job=other_job, task_type="render", priority=10)
        await store.store_server_tasks([failed, blocked, merge, elsewhere], T0)
        w = worker(types=("render", "merge"))
        await store.add_worker(w)
        await store.farm.record_failure(failed["_id"], w.id, "w", job, "render", T0)
        await store.farm.add_blocklist_entry(
            BlocklistEntry(w.id, job, "render", "three failures", T0, T0 + timedelta(days=1)))
        claimed = []
        while (task := await store.claim_task(w, T0)) is not None:
            claimed.append(task.id)
            await store.queue_update(update(task.id, task_status="completed"))
        self.assertEqual(claimed, [merge["_id"], elsewhere["_id"]])
        # Another worker still gets them, best first.
        self.assertEqual((await store.claim_task(worker(types=("render",)), T0)).id,
                         failed["_id"])
        # An expired entry no longer applies.
        later = T0 + timedelta(days=2)
        self.assertEqual((await store.claim_task(w, later)).id, blocked["_id"])

    async def test_remove_worker_and_its_blocklist_entries(self):
        from flamenco.store.farm import BlocklistEntry

        store = await self.store()
        w = worker()
        await store.add_worker(w)
        await store.farm.add_blocklist_entry(
            BlocklistEntry(w.id, JOB_ID, "sleep", "", T0, T0 + timedelta(days=1)))
        self.assertTrue(await store.farm.remove_worker(w.id))
        self.assertFalse(await store.farm.remove_worker(w.id))
        self.assertIsNone(await store.get_worker(w.id))
        self.assertEqual(await store.farm.blocklist(T0), [])

    async def test_log_marks_round_trip(self):
        from flamenco.store.farm import LogMark

        store = await self.store()
        task_id = new_object_id()
        self.assertIsNone(await store.farm.log_mark(task_id))
        await store.farm.set_log_mark(task_id, LogMark(JOB_ID, 10, "abc"))
        await store.farm.set_log_mark(task_id, LogMark(JOB_ID, 25, "def"))
        self.assertEqual(await store.farm.log_mark(task_id), LogMark(JOB_ID, 25, "def"))

    async def test_an_update_queued_with_a_log_mark_stores_both(self):
        from flamenco.store.farm import LogMark

        store = await self.store()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        u = update(doc["_id"], activity="rendering", log="frame 1 done")
        await store.queue_update(u, log_mark=LogMark(JOB_ID, 13, "digest-1"))
        self.assertEqual(await store.queued_updates(5), [u])
        self.assertEqual(await store.farm.log_mark(doc["_id"]), LogMark(JOB_ID, 13, "digest-1"))
        self.assertEqual((await store.get_task(doc["_id"])).doc["activity"], "rendering")

    async def test_remove_old_tasks_spares_active_recent_and_queued(self):
        from flamenco.store.farm import LogMark, OldTask

        store = await self.store()
        old, recent = T0, T0 + timedelta(days=20)
        parent = task_doc(status="failed")
        child = task_doc(parents=[parent["_id"]])
        active, queued = task_doc(), task_doc(status="completed")
        pinged = task_doc(status="completed")
        await store.store_server_tasks([parent, active, queued, pinged], old)
        await store.store_server_tasks([child], recent)
        await store.claim_task(worker(), old)  # `active`, pinged long ago
        self.assertEqual((await store.get_task(active["_id"])).status, "active")
        await store.queue_update(update(queued["_id"], activity="still to push"))
        await store.ping_task(pinged["_id"], new_object_id(), recent)
        await store.farm.record_failure(parent["_id"], new_object_id(), "w", JOB_ID, "sleep", old)
        await store.farm.set_log_mark(parent["_id"], LogMark(JOB_ID, 5))
        self.assertIsNone(await store.claim_task(worker(), recent), "the child waits")

        removed = await store.farm.remove_old_tasks(T0 + timedelta(days=14), 100)
        self.assertEqual(removed, [OldTask(parent["_id"], JOB_ID)])
        self.assertIsNone(await store.get_task(parent["_id"]))
        self.assertEqual(await store.count_tasks(), 4)
        self.assertEqual(await store.farm.failers(parent["_id"]), [])
        self.assertIsNone(await store.farm.log_mark(parent["_id"]))
        # The parent is unknown now, so it counts as completed.
        self.assertEqual((await store.claim_task(worker(), recent)).id, child["_id"])

    async def test_quarantine_round_trip_release_and_removal(self):
        from flamenco.store.farm import Quarantine

        store = await self.store()
        w = worker()
        await store.add_worker(w)
        self.assertIsNone(await store.farm.quarantine_of(w.id))
        entry = Quarantine(w.id, "failed tasks of 3 different jobs", T0)
        await store.farm.set_quarantine(entry)
        self.assertEqual(await store.farm.quarantine_of(w.id), entry)
        self.assertEqual(await store.farm.quarantined(), [entry])
        released = Quarantine(w.id, entry.reason, T0, T0 + timedelta(hours=1))
        await store.farm.set_quarantine(released)
        self.assertEqual(await store.farm.quarantine_of(w.id), released)
        self.assertEqual(await store.farm.quarantined(), [])
        await store.farm.set_quarantine(entry)
        await store.farm.remove_worker(w.id)
        self.assertIsNone(await store.farm.quarantine_of(w.id))

    async def test_sleep_schedules_round_trip_and_due(self):
        from flamenco.store.farm import SleepSchedule

        store = await self.store()
        a, b, c = new_object_id(), new_object_id(), new_object_id()
        farm = store.farm
        self.assertIsNone(await farm.sleep_schedule(a))
        first = SleepSchedule(a, True, ("mo", "we"), "09:00", "17:30")
        await farm.set_sleep_schedule(first)
        self.assertEqual(await farm.sleep_schedule(a), first)
        await farm.set_sleep_schedule(SleepSchedule(b, True, next_check=T0 + timedelta(hours=1)))
        await farm.set_sleep_schedule(SleepSchedule(c, False))
        self.assertEqual([s.worker_id for s in await farm.sleep_schedules_due(T0)], [a])
        due_later = await farm.sleep_schedules_due(T0 + timedelta(hours=1))
        self.assertEqual([s.worker_id for s in due_later], sorted([a, b]))
        self.assertEqual(due_later[[s.worker_id for s in due_later].index(b)].next_check,
                         T0 + timedelta(hours=1))
        self.assertTrue(await farm.remove_sleep_schedule(a))
        self.assertFalse(await farm.remove_sleep_schedule(a))
        self.assertIsNone(await farm.sleep_schedule(a))
