"""Two-way variables: a submitter's paths run in each Worker's form and come back in the
submitter's; Windows values match case-insensitively."""

import string

from hypothesis import given, strategies as st
from twisted.trial import unittest

from flamenco.config import ConfigError, parse_config
from flamenco.jobs.twoway import TwoWayVariables
from flamenco.variables import replace_in_commands, variables_for_platform

TABLE = {
    "projects": {"windows": "S:\\projects", "linux": "/mnt/projects",
                 "darwin": "/Volumes/projects"},
    "render": {"windows": "R:\\", "linux": "/render", "darwin": "/Volumes/render/"},
}
TWOWAY = TwoWayVariables(TABLE)
PLATFORMS = ("windows", "linux", "darwin")
SEPARATOR = {"windows": "\\", "linux": "/", "darwin": "/"}


def on_worker(stored: str, platform: str) -> str:
    """What the scheduler sends a Worker of `platform` (the §5.7 replacement)."""
    commands = [{"name": "x", "settings": {"value": stored}}]
    table = variables_for_platform(TWOWAY.worker_table(), platform)
    return replace_in_commands(commands, table)[0]["settings"]["value"]


class ExampleTests(unittest.TestCase):
    def test_windows_submission_runs_on_linux(self):
        stored = TWOWAY.from_submitter("S:\\projects\\shot.blend", "windows")
        self.assertEqual(stored, "{projects}/shot.blend")
        self.assertEqual(on_worker(stored, "linux"), "/mnt/projects/shot.blend")
        self.assertEqual(on_worker(stored, "darwin"), "/Volumes/projects/shot.blend")

    def test_windows_values_match_case_insensitively_and_either_separator(self):
        self.assertEqual(TWOWAY.from_submitter("s:/PROJECTS\\a.blend", "windows"),
                         "{projects}/a.blend")

    def test_linux_values_are_case_sensitive(self):
        self.assertEqual(TWOWAY.from_submitter("/mnt/Projects/a", "linux"), "/mnt/Projects/a")

    def test_only_whole_path_components_match(self):
        for text in ("/mnt/projectsX/a", "/data/mnt/projects/a"):
            self.assertEqual(TWOWAY.from_submitter(text, "linux"), text)

    def test_reported_paths_shown_to_the_submitter(self):
        line = "Saved: /mnt/projects/out/0001.png (took 3 s)"
        self.assertEqual(TWOWAY.for_submitter(line, "windows"),
                         "Saved: S:\\projects\\out\\0001.png (took 3 s)")

    def test_paths_inside_command_lines(self):
        stored = TWOWAY.from_submitter('ffmpeg -i "R:\\shot\\*.png" R:\\shot.mp4', "windows")
        self.assertEqual(stored, 'ffmpeg -i "{render}/shot/*.png" {render}/shot.mp4')
        self.assertEqual(on_worker(stored, "linux"),
                         'ffmpeg -i "/render/shot/*.png" /render/shot.mp4')

    def test_settings_strings_and_lists(self):
        settings = TWOWAY.settings_from_submitter(
            {"cmds": ["cp /mnt/projects/a /render/a"], "n": 3}, "linux")
        self.assertEqual(settings, {"cmds": ["cp {projects}/a {render}/a"], "n": 3})


segments = st.lists(st.text(string.ascii_letters + string.digits + "-_.", min_size=1,
                            max_size=8).filter(lambda s: s not in (".", "..")),
                    min_size=0, max_size=4)


class RoundTripTests(unittest.TestCase):
    @given(name=st.sampled_from(sorted(TABLE)), submitter=st.sampled_from(PLATFORMS),
           worker=st.sampled_from(PLATFORMS), parts=segments)
    def test_submitted_path_comes_back_as_submitted(self, name, submitter, worker, parts):
        base = TWOWAY.values[name][submitter]
        path = SEPARATOR[submitter].join([base, *parts])
        running = on_worker(TWOWAY.from_submitter(path, submitter), worker)
        self.assertTrue(running.startswith(TWOWAY.values[name][worker]))
        self.assertEqual(TWOWAY.for_submitter(running, submitter), path)

    @given(parts=segments, upper=st.booleans())
    def test_windows_spelling_does_not_matter(self, parts, upper):
        typed = "\\".join(["S:\\PROJECTS" if upper else "s:\\projects", *parts])
        stored = TWOWAY.from_submitter(typed, "windows")
        self.assertEqual(on_worker(stored, "linux"), "/".join(["/mnt/projects", *parts]))
        self.assertEqual(TWOWAY.for_submitter(on_worker(stored, "linux"), "windows").lower(),
                         typed.lower())

    @given(text=st.text(string.ascii_letters + " -_.:", max_size=30))
    def test_text_without_variables_is_unchanged(self, text):
        for platform in PLATFORMS:
            self.assertEqual(TWOWAY.from_submitter(text, platform), text)
            self.assertEqual(TWOWAY.for_submitter(text, platform), text)


class ConfigurationTests(unittest.TestCase):
    def test_the_key_is_validated_like_variables(self):
        config, _ = parse_config({"two_way_variables": TABLE})
        self.assertEqual(config.two_way_variables, TABLE)
        for wrong, named in (({"p": {"amiga": "x"}}, "two_way_variables.p: unknown platform"),
                             (["p"], "two_way_variables: expected a mapping"),
                             ({"p": {"linux": 3}}, "two_way_variables.p.linux: expected")):
            with self.assertRaisesRegex(ConfigError, named):
                parse_config({"two_way_variables": wrong})
