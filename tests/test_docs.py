"""The documentation in docs/ against the code, so that it cannot drift: the Worker API's
OpenAPI file against the routes served, the configuration page against `Config`, and every
relative link of the README and the pages against the files in the repository."""

import re
from pathlib import Path

import attrs
import yaml
from openapi_spec_validator import validate
from twisted.trial.unittest import TestCase

from flamenco import config
from flamenco.web.local_operator_api import LocalOperatorAPI
from flamenco.web.workers_api import WorkerAPI

REPO_ROOT = Path(__file__).parent.parent
DOCS = REPO_ROOT / "docs"
WORKER_SPEC = DOCS / "openapi-worker.yaml"
HTTP_METHODS = {"get", "post", "put", "delete", "patch"}


def _without_parameter_names(path: str) -> str:
    """`/tasks/<raw_id>/update` and `/tasks/{task_id}/update` both become `/tasks/{}/update`."""
    return re.sub(r"<(?:\w+:)?\w+>|\{\w+\}", "{}", path)


def worker_routes() -> set[tuple[str, str]]:
    """(path, method) of every route served on the Workers' port outside the operator area:
    the Worker API's and the loopback operator endpoints' Klein apps (HEAD/OPTIONS implied)."""
    routes = set()
    rules = [*WorkerAPI.app.url_map.iter_rules(), *LocalOperatorAPI.app.url_map.iter_rules()]
    for rule in rules:
        for method in rule.methods:
            if method.lower() in HTTP_METHODS:
                routes.add((_without_parameter_names(rule.rule), method.lower()))
    return routes


def documented_routes(spec: dict) -> set[tuple[str, str]]:
    return {(_without_parameter_names(path), method) for path, item in spec["paths"].items()
            for method in item if method in HTTP_METHODS}


class WorkerOpenAPITests(TestCase):
    def setUp(self):
        self.spec = yaml.safe_load(WORKER_SPEC.read_text("utf-8"))

    def test_the_file_is_valid_openapi_3(self):
        validate(self.spec)
        self.assertTrue(self.spec["openapi"].startswith("3."))

    def test_it_describes_exactly_the_worker_routes_served(self):
        served, documented = worker_routes(), documented_routes(self.spec)
        self.assertEqual(sorted(served - documented), [], "served but not in the file")
        self.assertEqual(sorted(documented - served), [], "in the file but not served")

    def test_the_route_comparison_can_fail(self):
        """A route missing from the file is noticed (the comparison is not vacuous)."""
        self.assertIn(("/tasks/{}/update", "post"), worker_routes())
        trimmed = dict(self.spec, paths={path: item for path, item in self.spec["paths"].items()
                                         if path != "/tasks/{task_id}/update"})
        self.assertNotEqual(documented_routes(trimmed), worker_routes())


CONFIG_PAGE = DOCS / "configuration.md"


def documented_keys() -> set[str]:
    """Every key named in the first column of a table row: `| `key` |` or `| `a`, `b` |`."""
    keys = set()
    for line in CONFIG_PAGE.read_text("utf-8").splitlines():
        match = re.match(r"\|\s*((?:`[a-z0-9_]+`(?:,\s*)?)+)\s*\|", line)
        if match:
            keys.update(re.findall(r"`([a-z0-9_]+)`", match[1]))
    return keys


class ConfigurationPageTests(TestCase):
    def test_every_setting_is_documented(self):
        fields = {field.name for field in attrs.fields(config.Config)}
        self.assertEqual(sorted(fields - documented_keys()), [])

    def test_every_other_spelling_is_documented(self):
        aliases = set(config._DURATION_ALIASES) | set(config._ALIASES)
        self.assertEqual(sorted(aliases - documented_keys()), [])

    def test_nothing_documented_is_unknown_to_the_configuration(self):
        accepted = ({field.name for field in attrs.fields(config.Config)}
                    | set(config._DURATION_ALIASES) | set(config._ALIASES))
        self.assertEqual(sorted(documented_keys() - accepted), [])


class LinkTests(TestCase):
    def test_relative_links_point_at_files_of_the_repository(self):
        pages = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
        broken = []
        for page in pages:
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
                if re.match(r"[a-z]+:", target):
                    continue  # http:, https:, mailto:
                resolved = (page.parent / target).resolve()
                inside = REPO_ROOT.resolve() in resolved.parents
                if not inside or not resolved.exists():
                    broken.append(f"{page.name}: {target}")
        self.assertEqual(broken, [])

    def test_no_page_points_outside_the_repository(self):
        pages = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
        outside = [page.name for page in pages if "../shared" in page.read_text("utf-8")]
        self.assertEqual(outside, [])


class ArchitecturePageTests(TestCase):
    def test_every_module_of_the_package_is_described(self):
        page = (DOCS / "architecture.md").read_text("utf-8")
        package = REPO_ROOT / "flamenco"
        missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
                   if path.name != "__init__.py" and f"{path.name}" not in page]
        self.assertEqual(missing, [], "modules the architecture page does not name")
