"""Per-platform `{variable}` replacement in command settings (PROTOCOL §5.7)."""

import copy
import re

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def variables_for_platform(variables: dict, platform: str) -> dict[str, str]:
    """The `name -> value` table for one platform; names without a value for it are left out."""
    return {
        name: per_platform[platform]
        for name, per_platform in variables.items()
        if isinstance(per_platform, dict) and platform in per_platform
    }


def replace_in_commands(commands: list, table: dict[str, str]) -> list:
    """A copy of `commands` with placeholders replaced in top-level string settings only.

    One pass, so a value that itself contains `{name}` is not expanded again; unknown
    placeholders stay as they are.
    """
    replaced = copy.deepcopy(commands)
    for command in replaced:
        settings = command.get("settings")
        if not isinstance(settings, dict):
            continue
        for key, value in settings.items():
            if isinstance(value, str):
                settings[key] = _PLACEHOLDER.sub(lambda m: table.get(m[1], m[0]), value)
    return replaced
