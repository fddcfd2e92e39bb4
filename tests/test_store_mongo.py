"""The Store contract on MongoStore (a real MongoDB-wire server), plus what only it has."""

from twisted.trial.unittest import TestCase

from flamenco.store.mongo import INDEXES, MongoStore, parse_url
from tests.mongo_fixture import fresh_store
from tests.store_contract import FarmContract, StoreContract


class MongoStoreContractTests(StoreContract, FarmContract, TestCase):
    async def make_store(self):
        return await fresh_store(self)

    async def reopen(self, store):
        # The first store stays open: the test's clean-up drops the database through it.
        again = MongoStore(store.url)
        await again.open()
        self.addCleanup(again.close)
        return again


class MongoURLTests(TestCase):
    def test_database_name_comes_from_the_path(self):
        self.assertEqual(parse_url("mongodb://db.example:27018/flamenco")[1], "flamenco")
        self.assertEqual(MongoStore("mongodb://db/flamenco").description,
                         "mongodb://db:27017/flamenco")

    def test_url_without_database_is_refused(self):
        for url in ("mongodb://db/", "mongodb://db", "postgres://db/flamenco"):
            self.assertRaises(ValueError, parse_url, url)


class MongoIndexTests(TestCase):
    async def test_open_creates_every_index(self):
        store = await fresh_store(self)
        for collection, name, keys in INDEXES:
            info = await store._db(store._coll(collection).index_information())
            self.assertIn(name, info, f"{collection}.{name}")
            self.assertEqual(list(info[name]["key"].items()), keys)
