"""The jobs-store contract on both backends."""

import os

from twisted.trial.unittest import TestCase

from flamenco.store.jobs import job_store_for
from flamenco.store.sqlite import SQLiteStore
from tests.jobs_store_contract import JobStoreContract
from tests.mongo_fixture import fresh_store


class SQLiteJobStoreTests(JobStoreContract, TestCase):
    async def make_store(self):
        store = SQLiteStore(os.path.join(self.mktemp() + ".sqlite"))
        await store.open()
        return store


class MongoJobStoreTests(JobStoreContract, TestCase):
    async def make_store(self):
        return await fresh_store(self)


class JobStoreForTests(TestCase):
    def test_a_wrapper_is_refused_rather_than_guessed(self):
        self.assertRaises(TypeError, job_store_for, object())
