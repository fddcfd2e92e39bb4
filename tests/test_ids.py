"""ObjectIds made without bson: the layout MongoDB's drivers use, and readable by them."""

import time

from bson.objectid import ObjectId
from twisted.trial.unittest import TestCase

from flamenco.ids import is_object_id, new_object_id


class NewObjectIdTests(TestCase):
    def test_timestamp_then_process_random_then_counter(self):
        before = int(time.time())
        ids = [new_object_id() for _ in range(3)]
        after = int(time.time())
        for value in ids:
            self.assertTrue(is_object_id(value))
            self.assertEqual(value, value.lower())
            self.assertTrue(before <= int(value[:8], 16) <= after)
        self.assertEqual({value[8:18] for value in ids}, {ids[0][8:18]})
        counters = [int(value[18:], 16) for value in ids]
        self.assertEqual(counters[1:], [(c + 1) % (1 << 24) for c in counters[:-1]])

    def test_bson_reads_them_as_the_same_ids(self):
        value = new_object_id()
        self.assertEqual(str(ObjectId(value)), value)
        self.assertEqual(int(ObjectId(value).generation_time.timestamp()), int(value[:8], 16))

    def test_distinct(self):
        ids = [new_object_id() for _ in range(1000)]
        self.assertEqual(len(set(ids)), len(ids))
