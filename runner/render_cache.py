"""The render cache: every table and function file's rendered SQL and checksum, kept between runs, so a
command whose project has not changed neither imports Jinja nor renders a template.

An entry is used only when everything a rendering reads is byte for byte what it was: every file under
sql/ (templates, macros, project.toml), the loaded configuration, the runner's installed core modules
(the renderer, its filters and globals: any install or upgrade rewrites them) and Jinja's own files. Anything else changed, and the
project is rendered again and the entry replaced: the cache can make a command faster, never different.

Where: `RUNNER_CACHE_DIR` when set (empty: no cache), else `.runner/cache/` beside the project's sql/
folder (where the embedded PostgreSQL keeps its data; the folder ignores itself in git); for an sql/
inside a Python package (the one shipped in the wheel), the user's cache folder instead. A folder that cannot be written
means no cache, never an error; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.project import Project, SqlFile

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "RUNNER_CACHE_DIR"
FORMAT = 1  # of the entry; bump when SqlFile's fields change
_FIELDS = (
    "kind",
    "name",
    "version",
    "description",
    "rendered",
    "checksum",
    "transactional",
    "depends",
    "finally_",
)


def folder(project: Project) -> Path | None:
    """The cache folder for `project`, or None when caching is off."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    if (project.sql_dir.parent / "__init__.py").is_file():  # the sql/ of an installed package: not there
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "checkout-sessions-runner"
    return project.sql_dir.parent / ".runner" / "cache"


def key(project: Project) -> str:
    """A digest of everything the rendered files depend on (file contents, not modification times, for
    the project; the installed code by size and modification time). Plain os calls, not pathlib: this
    runs on every command that reads the project, and pathlib's objects cost more than the reading."""
    digest = hashlib.sha256(f"format {FORMAT}\0{project.sql_dir}\0".encode())
    digest.update(repr(project.config).encode())
    # The core modules hold the renderer, its filters and the values it gives templates (locks' keys). Their
    # sizes and modification times stand for the runner's version too: an install or an upgrade rewrites
    # them, and an editable install changes them without changing the version (reading the version from
    # the package metadata would cost more than everything else here).
    with os.scandir(os.path.dirname(__file__)) as entries:
        for entry in sorted((e for e in entries if e.name.endswith(".py")), key=lambda e: e.name):
            _stat_into(digest, entry.path)
    _stat_into(digest, _jinja_origin())
    root = str(project.sql_dir)
    for rel, path in _files_under(root):
        digest.update(f"\0{rel}\0".encode())
        with open(path, "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()


def _files_under(root: str) -> list[tuple[str, str]]:
    """(path relative to root with /, full path) of every file under root, sorted. Symbolic links are
    followed, as Jinja's loader follows them (a linked macros/ folder is part of the project), each real
    folder once (a link back up the tree is not a loop)."""
    found, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in names:
            found.append((name if rel_folder == "." else f"{rel_folder}/{name}", os.path.join(folder, name)))
    return sorted(found)


def _stat_into(digest, path: str | None) -> None:
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        st = None
    digest.update(f"\0{path}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}".encode())


def _jinja_origin() -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec("jinja2")
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def _entry(project: Project) -> Path | None:
    place = folder(project)
    if place is None:
        return None
    name = hashlib.sha256(str(project.sql_dir).encode()).hexdigest()[:16]
    return place / f"render-{name}.json"


def load(project: Project, wanted_key: str) -> list[SqlFile] | None:
    """The cached files for this key, or None (no entry, another key, unreadable)."""
    from runner.project import SqlFile

    path = _entry(project)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != wanted_key:
            return None
        return [
            SqlFile(**{**{f: item[f] for f in _FIELDS}, "depends": tuple(item["depends"])})
            for item in data["files"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.debug("render cache %s unreadable (%s): rendering", path, exc)
        return None


def store(project: Project, wanted_key: str, files: list[SqlFile]) -> None:
    """Keep the rendered files under this key (atomically: a reader sees the old entry or the new one)."""
    path = _entry(project)
    if path is None:
        return
    data = {
        "key": wanted_key,
        "sql_dir": str(project.sql_dir),
        "files": [{f: getattr(sql_file, f) for f in _FIELDS} for sql_file in files],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# runner's render cache: safe to delete, never to commit\n*\n")
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".render-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:  # read-only project, full disk: rendering again next time is the cost
        log.debug("render cache %s not written (%s)", path, exc)
