"""Thumbnails of `/output-produced` images (Pillow), served by the operator API."""

import io
import os

from PIL import Image
from twisted.trial.unittest import TestCase

from tests.inprocess import InProcessManager


def write_png(folder: str, name: str, size=(1920, 1080), colour=(200, 40, 40)) -> str:
    path = os.path.join(folder, name)
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


class PreviewTests(TestCase):
    async def start(self):
        self.m = await InProcessManager(self).start()
        self.auth = await self.m.register(generation="2.x")
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        return self.m

    async def produce(self, *paths):
        response = await self.m.request("POST", "/output-produced", auth=self.auth,
                                        json_body={"paths": list(paths)})
        self.assertEqual(response.code, 204)
        await self.m.manager.operator.previews.when_idle()

    async def test_a_produced_image_becomes_a_downscaled_jpeg(self):
        m = await self.start()
        events = []
        m.manager.operator.bus.subscribe(events.append)
        await self.produce(write_png(self.folder, "frame-0001.png"))
        listed = (await m.request("GET", "/api/images")).json["images"]
        self.assertEqual(len(listed), 1)
        self.assertEqual((listed[0]["width"], listed[0]["height"]), (640, 360))
        self.assertTrue(listed[0]["path"].endswith("frame-0001.png"))
        image = await m.request("GET", listed[0]["url"])
        self.assertEqual(image.code, 200)
        self.assertEqual(image.headers.getRawHeaders("content-type"), ["image/jpeg"])
        with Image.open(io.BytesIO(image.body)) as decoded:
            self.assertEqual((decoded.format, decoded.size), ("JPEG", (640, 360)))
            self.assertGreater(decoded.getpixel((10, 10))[0], 150)
        self.assertEqual([e.type for e in events][-1], "image")

    async def test_only_the_last_five_are_kept_newest_first(self):
        m = await self.start()
        for number in range(7):
            await self.produce(write_png(self.folder, f"f{number}.png", size=(64, 48)))
        listed = (await m.request("GET", "/api/images")).json["images"]
        self.assertEqual([os.path.basename(i["path"]) for i in listed],
                         ["f6.png", "f5.png", "f4.png", "f3.png", "f2.png"])
        self.assertEqual((await m.request("GET", "/api/images/1.jpg")).code, 404)

    async def test_paths_the_manager_cannot_read_are_skipped(self):
        m = await self.start()
        text = os.path.join(self.folder, "notes.txt")
        with open(text, "w") as f:
            f.write("not an image")
        await self.produce("/nonexistent/frame.exr", text)
        self.assertEqual((await m.request("GET", "/api/images")).json["images"], [])
        await self.produce(write_png(self.folder, "ok.png"), "/nonexistent/later.png")
        listed = (await m.request("GET", "/api/images")).json["images"]
        self.assertEqual([os.path.basename(i["path"]) for i in listed], ["ok.png"])
