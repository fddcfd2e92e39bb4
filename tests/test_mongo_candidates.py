"""The MongoDB store's in-memory candidate heaps stay bounded (no database needed)."""

from twisted.trial.unittest import TestCase

from flamenco.store.mongo_claims import CANDIDATES_KEPT, _Candidates


def record(number: int, priority: int) -> dict:
    return {"_id": f"task-{number:06d}", "status": "queued", "_fm_type": "sleep",
            "_fm_job_priority": 50, "_fm_priority": priority, "_fm_unfinished_parents": 0}


class CandidateHeapTests(TestCase):
    def test_a_big_download_keeps_the_best_candidates_and_asks_for_a_reload_later(self):
        candidates = _Candidates()
        candidates.reload("sleep", [], now=0.0, complete=True)
        candidates.note([record(n, n % 100) for n in range(10 * CANDIDATES_KEPT)])
        self.assertLessEqual(len(candidates._heaps["sleep"]), 2 * CANDIDATES_KEPT)
        best = candidates.pop(["sleep"])
        self.assertEqual(best["_id"], "task-000099")  # priority 99, the lowest ID of those
        while candidates.pop(["sleep"]) is not None:
            pass
        self.assertEqual(candidates.needing_reload(["sleep"], now=1.0, ttl=5.0), ["sleep"])
