"""Job types: loading through entry points, declared settings, validation listing every
problem, and the command documents the Workers execute."""

import os
import sys

from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from flamenco.jobs.frames import as_range_text, parse_frames
from flamenco.jobs.submission import JobRejected, prepare_job, task_documents
from flamenco.jobs.twoway import TwoWayVariables
from flamenco.jobs.types import load_job_types

TYPES = load_job_types()
NO_VARIABLES = TwoWayVariables({})


def prepare(doc, twoway=NO_VARIABLES):
    return prepare_job(doc, TYPES, twoway)


def problems_of(doc) -> list[str]:
    try:
        prepare(doc)
    except JobRejected as error:
        return error.problems
    raise AssertionError("the job was accepted")


class EntryPointTests(unittest.TestCase):
    def test_builtin_types_come_from_entry_points(self):
        self.assertEqual(sorted(TYPES), ["blender-render", "exec", "sleep"])

    def test_unknown_group_loads_nothing(self):
        self.assertEqual(load_job_types("flamenco.no_such_group"), {})

    def test_every_setting_declares_type_and_description(self):
        for job_type in TYPES.values():
            for spec in job_type.settings:
                described = spec.describe()
                self.assertIn(described["type"], ("string", "integer", "number", "boolean",
                                                  "string-list"))
                self.assertTrue(described["description"], spec.name)


class SleepTests(unittest.TestCase):
    def test_defaults_fill_in(self):
        job = prepare({"name": "smoke", "type": "sleep"})
        self.assertEqual(job.settings, {"n_tasks": 3, "seconds": 10})
        self.assertEqual(job.priority, 50)
        self.assertEqual([t.name for t in job.tasks], ["sleep-1", "sleep-2", "sleep-3"])

    def test_echo_then_sleep(self):
        job = prepare({"name": "smoke", "type": "sleep",
                       "settings": {"n_tasks": 1, "seconds": 2.5}})
        (task,) = job.tasks
        self.assertEqual(task.task_type, "sleep")
        self.assertEqual(task.commands, (
            {"name": "echo", "settings": {"message": "Sleeping 2.5 s (task 1 of 1)"}},
            {"name": "sleep", "settings": {"time_in_seconds": 2.5}},
        ))


class ExecTests(unittest.TestCase):
    def test_one_task_per_item(self):
        job = prepare({"name": "x", "type": "exec",
                       "settings": {"cmds": ["echo a", "echo b"]}})
        self.assertEqual([t.commands for t in job.tasks], [
            ({"name": "exec", "settings": {"cmd": "echo a"}},),
            ({"name": "exec", "settings": {"cmd": "echo b"}},),
        ])
        self.assertEqual({t.task_type for t in job.tasks}, {"exec"})

    def test_single_command(self):
        job = prepare({"name": "x", "type": "exec", "settings": {"cmd": "true"}})
        self.assertEqual(len(job.tasks), 1)

    def test_exactly_one_of_cmd_and_cmds(self):
        self.assertEqual(problems_of({"name": "x", "type": "exec", "settings": {}}),
                         ["settings: give exactly one of 'cmd' and 'cmds'"])
        self.assertEqual(len(problems_of({"name": "x", "type": "exec",
                                          "settings": {"cmd": "a", "cmds": ["b"]}})), 1)

    def test_empty_lines_are_named(self):
        self.assertEqual(problems_of({"name": "x", "type": "exec",
                                      "settings": {"cmds": ["ok", " "]}}),
                         ["settings.cmds[1]: empty command line"])


BLEND = {"filepath": "/shared/shot.blend", "frames": "1-25",
         "render_output": "/render/shot/######", "chunk_size": 10}


class BlenderRenderTests(unittest.TestCase):
    def test_chunks(self):
        job = prepare({"name": "shot", "type": "blender-render", "settings": BLEND})
        self.assertEqual([t.name for t in job.tasks],
                         ["blender-render-1-10", "blender-render-11-20", "blender-render-21-25"])
        self.assertEqual(job.tasks[0].commands, ({
            "name": "blender_render",
            "settings": {"blender_cmd": "{blender}", "filepath": "/shared/shot.blend",
                         "format": "PNG", "render_output": "/render/shot/######",
                         "frames": "1..10"},
        },))
        self.assertEqual({t.task_type for t in job.tasks}, {"blender-render"})
        self.assertEqual({t.parents for t in job.tasks}, {()})

    def test_video_depends_on_every_chunk(self):
        job = prepare({"name": "shot", "type": "blender-render",
                       "settings": dict(BLEND, video_output="/render/shot.mp4", fps=25)})
        video = job.tasks[-1]
        self.assertEqual(video.task_type, "video-encoding")
        self.assertEqual(video.parents, tuple(t.name for t in job.tasks[:-1]))
        self.assertEqual(video.commands, ({
            "name": "create_video",
            "settings": {"ffmpeg_cmd": "{ffmpeg}", "input_files": "/render/shot/*.png",
                         "output_file": "/render/shot.mp4", "fps": 25},
        },))

    def test_task_documents_link_parents_by_id(self):
        job = prepare({"name": "shot", "type": "blender-render",
                       "settings": dict(BLEND, video_output="/render/shot.mp4")})
        counter = iter(range(100))
        docs = task_documents("5a1f0e229f1b2c0d4e5f6a72", job, lambda: f"{next(counter):024x}")
        self.assertEqual(docs[-1]["parents"], [doc["_id"] for doc in docs[:-1]])
        self.assertEqual({doc["status"] for doc in docs}, {"queued"})
        self.assertEqual({doc["job"] for doc in docs}, {"5a1f0e229f1b2c0d4e5f6a72"})
        self.assertEqual(docs[0]["job_type"], "blender-render")

    def test_every_problem_is_listed(self):
        problems = problems_of({"name": "", "type": "blender-render", "priority": 0,
                                "colour": "red",
                                "settings": {"frames": 5, "chunk_size": 0, "typo": 1}})
        self.assertEqual(problems, [
            "name: required, a non-empty string",
            "priority: must be 1..100, not 0",
            "colour: unknown field",
            "settings.typo: unknown setting (known: blender_cmd, chunk_size, ffmpeg_cmd,"
            " filepath, format, fps, frames, render_output, video_output)",
            "settings.filepath: required",
            "settings.frames: expected a string, not 5",
            "settings.render_output: required",
            "settings.chunk_size: must be at least 1, not 0",
        ])

    def test_compile_problems_are_listed_together(self):
        problems = problems_of({"name": "s", "type": "blender-render", "settings": dict(
            BLEND, frames="10-1", render_output="/render/x.png", format="WEBP",
            video_output="/v.mp4")})
        self.assertEqual(len(problems), 3)
        self.assertTrue(problems[0].startswith("settings.frames: range '10-1'"))

    def test_unknown_type_names_the_known_ones(self):
        self.assertEqual(problems_of({"name": "x", "type": "render"}),
                         ["type: 'render' is not a job type (known: blender-render, exec, sleep)"])


class FrameTests(unittest.TestCase):
    def test_parse_and_print(self):
        self.assertEqual(parse_frames("1-3, 7,9..10"), [1, 2, 3, 7, 9, 10])
        self.assertEqual(as_range_text([1, 2, 3, 7, 9, 10]), "1..3,7,9..10")

    def test_duplicates_are_dropped(self):
        self.assertEqual(parse_frames("1-3,2"), [1, 2, 3])

    def test_bad_text(self):
        for text in ("", "a", "1-", "5-1"):
            self.assertRaises(ValueError, parse_frames, text)

    def test_frame_count_is_bounded_even_with_overlaps(self):
        with self.assertRaisesRegex(ValueError, "more than 1,000,000 frames"):
            parse_frames(",".join(["1-600000"] * 2))


class LimitTests(unittest.TestCase):
    def test_too_many_tasks(self):
        self.assertEqual(problems_of({"name": "x", "type": "blender-render", "settings": dict(
            BLEND, frames="1-20001", chunk_size=2)}),
            ["the job would have 10,001 tasks; at most 10,000 (use larger chunks)"])


STUDIO_MODULE = '''
from flamenco.jobs.compiled import TaskSpec, command
from flamenco.jobs.settings import SettingSpec


class Turntable:
    name = "turntable"
    description = "A studio's own type."
    settings = (SettingSpec("angle", "integer", "degrees per task", default=90),)

    def compile(self, settings):
        return [TaskSpec(name=f"turn-{a}", task_type="sleep",
                         commands=(command("echo", message=str(a)),))
                for a in range(0, 360, settings["angle"])]


job_type = Turntable()
'''


class StudioJobTypeTests(unittest.TestCase):
    """A package of the studio's own, installed beside the Manager (a dist-info on sys.path)."""

    def install(self, entry_points: str) -> str:
        root = self.mktemp()
        os.makedirs(os.path.join(root, "studio_jobs-1.0.dist-info"))
        with open(os.path.join(root, "studio_jobs.py"), "w") as stream:
            stream.write(STUDIO_MODULE)
        with open(os.path.join(root, "studio_jobs-1.0.dist-info", "METADATA"), "w") as stream:
            stream.write("Metadata-Version: 2.1\nName: studio-jobs\nVersion: 1.0\n")
        with open(os.path.join(root, "studio_jobs-1.0.dist-info", "entry_points.txt"),
                  "w") as stream:
            stream.write(entry_points)
        sys.path.insert(0, os.path.abspath(root))
        self.addCleanup(sys.path.remove, os.path.abspath(root))
        self.addCleanup(sys.modules.pop, "studio_jobs", None)
        return root

    def test_a_studio_type_is_loaded_and_broken_ones_are_left_out(self):
        self.install("[flamenco.test_job_types]\n"
                     "turntable = studio_jobs:job_type\n"
                     "broken = studio_jobs_missing:job_type\n"
                     "misnamed = studio_jobs:job_type\n")
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        types = load_job_types("flamenco.test_job_types")
        self.assertEqual(sorted(types), ["turntable"])
        logged = sorted(event["name"] for event in events
                        if event.get("log_level") == LogLevel.error and "name" in event)
        self.assertEqual(logged, ["broken", "misnamed"])
        job = prepare_job({"name": "t", "type": "turntable", "settings": {"angle": 120}},
                          types, NO_VARIABLES)
        self.assertEqual([t.name for t in job.tasks], ["turn-0", "turn-120", "turn-240"])
