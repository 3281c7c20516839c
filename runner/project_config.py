"""Where the SQL project is and its configuration (sql/project.toml), read and checked.

Apart from runner/project.py (which renders the files) so that `runner report list` can find the project
without importing what rendering needs (runner/launch.py prints it without click).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

CONFIG_FILE = "project.toml"
# settings.platform: "postgres" (any PostgreSQL 14-18) or "supabase" (its roles, auth.users, RLS).
PLATFORMS = ("postgres", "supabase")


def packaged_sql_dir() -> Path | None:
    """The sql/ tree shipped inside the installed package (None when absent, e.g. an editable install)."""
    import importlib.resources  # here, not at the top: it costs more than the rest of this module

    packaged = Path(str(importlib.resources.files("runner") / "sql"))
    return packaged if (packaged / CONFIG_FILE).is_file() else None


def locate(project_dir: str | Path | None = None) -> Path:
    """Find the sql/ folder: --project-dir, else ./sql of the current folder, else the packaged one."""
    if project_dir is not None:
        base = Path(project_dir)
        for candidate in (base / "sql", base):
            if (candidate / CONFIG_FILE).is_file():
                return candidate.resolve()
        raise ConfigError(f"--project-dir {base}: no sql/{CONFIG_FILE} there")
    here = Path.cwd() / "sql"
    if (here / CONFIG_FILE).is_file():
        return here.resolve()
    packaged = packaged_sql_dir()
    if packaged is not None:
        return packaged
    raise ConfigError(
        f"no SQL project found: no ./sql/{CONFIG_FILE} here and none in the installed package; "
        "pass --project-dir"
    )


def read_config(sql_dir: Path) -> dict[str, Any]:
    """The project's configuration (sql_dir/project.toml), checked."""
    path = sql_dir / CONFIG_FILE
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_config(config, path)
    return config


def _check_config(config: dict[str, Any], path: Path) -> None:
    settings = config.get("settings")
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: missing [settings]")
    for key in ("schema", "history_table"):
        value = settings.get(key)
        if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ConfigError(f"{path}: settings.{key} must be a lower-case SQL identifier, got {value!r}")
    for key in ("app_role", "jobs_role", "reporting_role"):
        value = settings.get(key)
        if value is not None and (
            not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value)
        ):
            raise ConfigError(f"{path}: settings.{key} must be a lower-case SQL identifier, got {value!r}")
    roles = [(key, settings[key]) for key in ("app_role", "jobs_role", "reporting_role") if settings.get(key)]
    for i, (key, value) in enumerate(roles):
        for other, other_value in roles[i + 1 :]:
            if value == other_value:  # each component's least privilege needs a role of its own
                raise ConfigError(f"{path}: settings.{key} and settings.{other} must differ")
    # Which platform the templates build for (sql/functions/supabase_access.sql): absent means "postgres".
    platform = settings.setdefault("platform", "postgres")
    if platform not in PLATFORMS:
        raise ConfigError(
            f"{path}: settings.platform must be one of {', '.join(map(repr, PLATFORMS))}, got {platform!r}"
        )
    if "manage_roles" in settings and not isinstance(settings["manage_roles"], bool):
        raise ConfigError(
            f"{path}: settings.manage_roles must be true or false, got {settings['manage_roles']!r}"
        )
    for key in ("expiry_hours", "retention_days"):
        value = settings.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{path}: settings.{key} must be a positive whole number, got {value!r}")
    codes = set()
    for plan in config.get("plans", []):
        code = plan.get("code")
        if not isinstance(code, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", code):
            raise ConfigError(f"{path}: plan code {code!r} must be lower-case letters, digits, - or _")
        if code in codes:
            raise ConfigError(f"{path}: plan {code!r} appears twice")
        codes.add(code)
        try:
            from decimal import Decimal, InvalidOperation

            if Decimal(str(plan.get("price"))) <= 0:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            raise ConfigError(
                f"{path}: plan {code!r} needs a positive price, got {plan.get('price')!r}"
            ) from None
