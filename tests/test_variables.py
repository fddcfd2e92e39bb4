"""Variable replacement (PROTOCOL §5.7)."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from flamenco.variables import replace_in_commands, variables_for_platform

VARIABLES = {"blender": {"linux": "/opt/blender", "windows": "c:/blender.exe"},
             "render": {"linux": "/render"}}

names = st.text("abcdefgh_", min_size=1, max_size=6)
values = st.text("xyz/{}: ", max_size=12)
settings_values = st.one_of(
    st.integers(), st.none(), st.booleans(), values,
    st.lists(values, max_size=3), st.dictionaries(names, values, max_size=3),
)


class VariableTests(TestCase):
    def test_platform_table(self):
        self.assertEqual(variables_for_platform(VARIABLES, "windows"),
                         {"blender": "c:/blender.exe"})
        self.assertEqual(variables_for_platform(VARIABLES, "darwin"), {})

    def test_replaces_every_occurrence_and_keeps_unknown_placeholders(self):
        commands = [{"name": "exec", "settings": {
            "cmd": "{blender} -o {render}/{blender} {unknown} {Blender}"}}]
        out = replace_in_commands(commands, variables_for_platform(VARIABLES, "linux"))
        self.assertEqual(out[0]["settings"]["cmd"],
                         "/opt/blender -o /render//opt/blender {unknown} {Blender}")
        self.assertEqual(commands[0]["settings"]["cmd"],
                         "{blender} -o {render}/{blender} {unknown} {Blender}", "input untouched")

    def test_values_are_not_expanded_again(self):
        out = replace_in_commands([{"name": "x", "settings": {"a": "{one}"}}],
                                  {"one": "{two}", "two": "deep"})
        self.assertEqual(out[0]["settings"]["a"], "{two}")

    @given(st.dictionaries(names, settings_values, max_size=5),
           st.dictionaries(names, values, max_size=4))
    def test_only_top_level_strings_change(self, settings, table):
        out = replace_in_commands([{"name": "cmd", "settings": settings}], table)[0]["settings"]
        self.assertEqual(set(out), set(settings))
        for key, value in settings.items():
            if not isinstance(value, str) or "{" not in value:
                self.assertEqual(out[key], value)

    @given(st.dictionaries(names, values, min_size=1, max_size=4), st.data())
    def test_a_lone_placeholder_becomes_its_value(self, table, data):
        name = data.draw(st.sampled_from(sorted(table)))
        out = replace_in_commands([{"name": "c", "settings": {"k": "{" + name + "}"}}], table)
        self.assertEqual(out[0]["settings"]["k"], table[name])
