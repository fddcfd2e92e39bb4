"""The dashboard in headless Chromium (Playwright), against a Manager served in-process.

The Manager runs on the reactor with real time; the browser runs in one thread of its own and
plays the operator, while the test acts as a Worker and as the Server's admin.
"""

from __future__ import annotations

import json
import re
import urllib.request
from base64 import b64encode

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.store.sqlite import SQLiteStore
from flamenco.testing import serve_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker
from flamenco.operator_login import hash_password
from tests.browser import chromium_path, screenshot_path

PASSWORD = "render all the things"
TIMEOUT_MS = 20_000


def render_image(folder: str) -> str:
    """A stand-in for a rendered frame: a gradient PNG."""
    import os

    from PIL import Image

    os.makedirs(folder)
    image = Image.linear_gradient("L").resize((960, 540)).convert("RGB")
    r, g, b = image.split()
    path = os.path.join(os.path.abspath(folder), "frame-0001.png")
    Image.merge("RGB", (g, b.point(lambda v: 255 - v), r)).save(path)
    return path


class Worker:
    """A 2.x Worker speaking plain HTTP from the browser thread."""

    def __init__(self, base: str):
        self.base = base
        self.auth = ""

    def call(self, method: str, path: str, doc=None) -> tuple[int, bytes]:
        headers = {"User-Agent": "Flamenco-Worker/2.5", "Content-Type": "application/json"}
        if self.auth:
            headers["Authorization"] = self.auth
        data = json.dumps(doc).encode() if doc is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()

    def register(self, nickname: str) -> str:
        _, body = self.call("POST", "/register-worker", {
            "secret": "s3cret", "platform": "linux", "supported_task_types": ["sleep"],
            "nickname": nickname})
        worker_id = json.loads(body)["_id"]
        self.auth = "Basic " + b64encode(f"{worker_id}:s3cret".encode()).decode()
        return worker_id


class DashboardTests(TestCase):
    timeout = 120

    async def start_farm(self):
        self.server = serve_for_test(self)
        self.job_id, self.task_ids = self.server.create_job(
            [{"name": "frame-0001"}, {"name": "frame-0002"}])
        config = Config(flamenco=self.server.url, manager_id=DEFAULT_MANAGER_ID,
                        manager_secret=DEFAULT_MANAGER_SECRET,
                        admin_password=hash_password(PASSWORD, rounds=4),
                        download_task_sleep_seconds=3600,
                        # An (empty) push every second: a Server outage shows within seconds.
                        cancel_task_fetch_max_interval_seconds=1,
                        task_update_push_backoff_max_seconds=2)
        store = SQLiteStore(self.mktemp() + ".sqlite")
        self.manager = build_manager(config, store, reactor, bcrypt_rounds=4)
        self.manager.services.startService()
        self.addCleanup(self.manager.services.stopService)
        port = reactor.listenTCP(0, Site(self.manager.resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        link = self.manager.task_source
        await link.downloader.when_idle()
        self.render_path = render_image(self.mktemp())

    def set_server_down(self, down: bool) -> None:
        def change():
            self.server.down_status = 503 if down else None
        threads.blockingCallFromThread(reactor, change)

    def operator_session(self, executable: str) -> dict:
        """Everything the browser does, in this one thread; returns what it saw."""
        from playwright.sync_api import expect, sync_playwright

        seen: dict = {}
        worker = Worker(self.base)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                # Log in.
                page.goto(self.base + "/app/")
                expect(page).to_have_url(self.base + "/login")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                expect(page).to_have_url(self.base + "/app/")
                page.wait_for_selector("body.loaded")
                expect(page.locator("#live")).to_have_text("live")
                expect(page.locator("#jobs-relay")).to_be_visible()  # jobs are the Server's
                expect(page.locator("#jobs")).to_be_hidden()

                # A Worker appears without reloading, and wakes up.
                worker_id = worker.register("render-07")
                row = page.locator(f'#workers tr[data-worker-id="{worker_id}"]')
                expect(row.locator(".name")).to_have_text("render-07")
                worker.call("POST", "/sign-on", {"nickname": "render-07"})
                expect(row.locator(".status .badge")).to_have_text("starting")

                # It gets a task; the tasks table follows the download.
                status, body = worker.call("POST", "/task")
                seen["task_status_code"] = status
                task = json.loads(body)
                expect(row.locator(".status .badge")).to_have_text("awake")
                task_row = page.locator(f'#tasks tr[data-task-id="{task["_id"]}"]')
                expect(task_row.locator(".status .badge")).to_have_text("active")

                # Put it to sleep: the request shows at once, the status when it acknowledges.
                row.locator('button[data-action="sleep"]').click()
                expect(row.locator(".requested")).to_have_text("→ asleep")

                # Watch the task's log lines arrive.
                task_row.click()
                detail = page.locator("#task-detail")
                expect(detail).to_be_visible()
                for frame in (1, 2, 3):
                    worker.call("POST", f"/tasks/{task['_id']}/update", {
                        "activity": f"rendering frame {frame}",
                        "log": f"Fra:{frame} Mem:12.3M | Rendering {frame}/3\n"})
                expect(page.locator("#detail-log")).to_contain_text("Fra:3 Mem:12.3M")
                worker.call("POST", "/output-produced", {"paths": [self.render_path]})
                expect(page.locator("#thumbnails img")).to_have_count(1)
                expect(task_row.locator(".activity")).to_have_text("rendering frame 3")
                page.screenshot(path=screenshot_path("dashboard-task-detail.png"))
                page.keyboard.press("Escape")

                worker.call("POST", "/ack-status-change/asleep")
                expect(row.locator(".status .badge")).to_have_text("asleep")
                expect(row.locator(".requested")).to_have_count(0)
                active = page.locator('#queue-by-status [data-status="active"]')
                expect(active).to_have_text("1 active")
                page.screenshot(path=screenshot_path("dashboard.png"), full_page=True)

                # The upstream panel turns red while the Server is down, green after.
                upstream = page.locator("#upstream")
                expect(upstream).to_have_attribute("data-state", "green")
                self.set_server_down(True)
                expect(upstream).to_have_attribute("data-state", "red")
                page.screenshot(path=screenshot_path("dashboard-server-down.png"))
                self.set_server_down(False)
                expect(upstream).to_have_attribute("data-state", "green")
                # On a phone the page does not scroll sideways (wide tables scroll inside).
                page.set_viewport_size({"width": 390, "height": 844})
                seen["phone_overflow"] = page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                page.screenshot(path=screenshot_path("dashboard-phone.png"), full_page=True)
                seen["errors"] = errors
                seen["reloads"] = page.evaluate("performance.getEntriesByType('navigation').length")
            finally:
                browser.close()
        return seen

    async def test_operator_watches_and_steers_the_farm_live(self):
        executable = chromium_path()
        await self.start_farm()
        seen = await threads.deferToThread(self.operator_session, executable)
        self.assertEqual(seen["task_status_code"], 200)
        self.assertEqual(seen["reloads"], 1, "everything after the first load came live")
        self.assertEqual(seen["errors"], [], "no script error on the page")
        self.assertLessEqual(seen["phone_overflow"], 0, "no sideways scrolling on a phone")


class StandaloneJobsTests(TestCase):
    """Stand-alone mode: a job submitted through the API shows up, moves and is steered live."""

    timeout = 120

    async def start_manager(self):
        store = SQLiteStore(self.mktemp() + ".sqlite")
        self.manager = build_manager(Config(), store, reactor, bcrypt_rounds=4)
        self.manager.services.startService()
        self.addCleanup(self.manager.services.stopService)
        port = reactor.listenTCP(0, Site(self.manager.resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        self.worker = SimulatedWorker(self.base, generation=GENERATION_2_X, types=("sleep",),
                                      nickname="render-11")
        self.addCleanup(self.worker.close)
        await self.worker.register()
        await self.worker.sign_on()

    def run_one_task(self) -> str:
        """From the browser thread: the simulated Worker takes a task and runs it to the end."""
        async def run():
            doc = await self.worker.ask_for_task()
            await self.worker.run_task(doc)
            return doc["name"]
        return threads.blockingCallFromThread(reactor, lambda: defer.ensureDeferred(run()))

    def submit(self, doc: dict) -> dict:
        request = urllib.request.Request(self.base + "/api/jobs", data=json.dumps(doc).encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def operator_session(self, executable: str) -> dict:
        from playwright.sync_api import expect, sync_playwright

        seen: dict = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("dialog", lambda dialog: dialog.accept())  # "Delete this job?"
                page.goto(self.base + "/app/")
                page.wait_for_selector("body.loaded")
                expect(page.locator("#live")).to_have_text("live")
                expect(page.locator("#no-jobs")).to_be_visible()
                expect(page.locator("#jobs-relay")).to_be_hidden()
                expect(page.locator("#job-types")).to_contain_text("n_tasks")

                # Submitted through the API, the job appears without a reload.
                job = self.submit({"name": "shot-010", "type": "sleep", "priority": 60,
                                   "settings": {"n_tasks": 4, "seconds": 1}})
                row = page.locator(f'#jobs tr[data-job-id="{job["id"]}"]')
                expect(row.locator(".name")).to_have_text("shot-010")
                expect(row.locator(".status .badge")).to_have_text("queued")
                expect(row.locator(".progress .label")).to_have_text("0/4")

                # The Worker runs tasks: the progress and the status follow.
                first = self.run_one_task()
                expect(row.locator(".progress .label")).to_have_text("1/4")
                expect(row.locator(".status .badge")).to_have_text("active")
                row.click()
                detail = page.locator("#job-detail")
                expect(detail).to_be_visible()
                expect(detail.locator("#job-tasks tbody tr")).to_have_count(4)
                self.run_one_task()
                expect(detail.locator("#job-progress .label")).to_have_text("2/4")
                expect(detail.locator("#job-tasks .badge", has_text="completed")).to_have_count(2)

                # Pause it from the dashboard: its waiting tasks are held back.
                detail.locator('button[data-action="pause"]').click()
                expect(detail.locator("#job-fields .badge")).to_have_text("paused")
                expect(row.locator(".status .badge")).to_have_text("paused")
                expect(detail.locator("#job-tasks .badge", has_text="paused")).to_have_count(2)
                detail.locator('button[data-action="resume"]').click()
                # Resumed with two tasks done: `queued` until the next job round says `active`.
                expect(row.locator(".status .badge")).to_have_text(re.compile("^(queued|active)$"))

                # A task of the job opens the task detail, with its log.
                detail.locator("#job-tasks tbody tr", has_text=first).click()
                expect(page.locator("#task-detail")).to_be_visible()
                expect(page.locator("#detail-title")).to_have_text(first)
                expect(page.locator("#detail-log")).to_contain_text("Finished")
                page.keyboard.press("Escape")
                expect(page.locator("#task-detail")).to_be_hidden()
                page.screenshot(path=screenshot_path("dashboard-job-detail.png"))

                # Cancel: the waiting tasks end at once, and a finished job can be deleted.
                detail.locator('button[data-action="cancel"]').click()
                expect(row.locator(".status .badge")).to_have_text("canceled")
                expect(detail.locator("#job-progress .label")).to_have_text("2/4")
                detail.locator('button[data-action="delete"]').click()
                expect(detail).to_be_hidden()
                expect(row).to_have_count(0)
                seen["errors"] = errors
                seen["reloads"] = page.evaluate("performance.getEntriesByType('navigation').length")
            finally:
                browser.close()
        return seen

    async def test_operator_follows_and_steers_a_job_live(self):
        executable = chromium_path()
        await self.start_manager()
        seen = await threads.deferToThread(self.operator_session, executable)
        self.assertEqual(seen["reloads"], 1, "everything after the first load came live")
        self.assertEqual(seen["errors"], [], "no script error on the page")
