"""The SQL project on disk: where it is, its configuration, its files, rendered and checksummed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runner.errors import ProjectError, TemplateError
from runner.project_config import (  # noqa: F401 (re-exported: where the project is, its configuration)
    CONFIG_FILE,
    PLATFORMS,
    locate,
    packaged_sql_dir,
    read_config,
)

VERSIONED_NAME = re.compile(r"^V(?P<version>\d+)__(?P<description>[A-Za-z0-9_]+)\.sql$")
REPEATABLE_NAME = re.compile(r"^(?P<description>[A-Za-z0-9_]+)\.sql$")
DIRECTIVE = re.compile(r"^--\s*(?P<key>depends|runner)\s*:\s*(?P<value>.*?)\s*$")
# A file creating one of the project's objects: CREATE [OR REPLACE] TABLE|VIEW|FUNCTION {{ m.q("name") }}.
CREATED_OBJECT = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+|MATERIALIZED\s+)?(TABLE|VIEW|FUNCTION|PROCEDURE)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?\{\{\s*m\.q\(\s*[\"'](\w+)[\"']\s*\)\s*\}\}",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SqlFile:
    """One SQL file of the project, rendered."""

    kind: Literal["versioned", "repeatable"]
    name: str  # path relative to the sql/ folder, e.g. "tables/V001__users.sql"
    version: int | None
    description: str
    rendered: str
    checksum: str
    transactional: bool = True
    depends: tuple[str, ...] = ()
    # `-- runner: finally`: runs after every other file, and again after any apply that applied something
    # (privileges: a function dropped and created again must get its grants back).
    finally_: bool = False

    @property
    def label(self) -> str:
        return f"sql/{self.name}"


@dataclass
class Project:
    """A SQL project: the `sql/` folder with its `project.toml`, `tables/`, `functions/`, `reports/`."""

    sql_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    # One Jinja environment per project, so the shared macros and every file compile once per process
    # (its loader re-checks each file's mtime, so an edited file is recompiled). Rebuilt if the
    # configuration it renders from changes.
    _env: Any = field(default=None, init=False, repr=False, compare=False)
    _env_key: str | None = field(default=None, init=False, repr=False, compare=False)
    # files() of the last render, under the render cache's key of its inputs (runner/render_cache.py).
    _files: tuple[str, list[SqlFile]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config["settings"]

    @property
    def schema(self) -> str:
        return self.settings["schema"]

    @property
    def history_table(self) -> str:
        return f"{self.schema}.{self.settings['history_table']}"

    # -- rendering -----------------------------------------------------------------------------------
    def _environment(self):
        key = repr((self.sql_dir, self.config))
        if self._env is None or self._env_key != key:
            self._env, self._env_key = self._new_environment(), key
        return self._env

    def _new_environment(self):
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.sql_dir)),
            bytecode_cache=_bytecode_cache(),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        env.filters["sql_literal"] = sql_literal
        env.filters["sql_ident"] = sql_ident
        env.globals["project_objects"] = self.created_objects
        from runner import locks

        env.globals.update(
            settings=self.settings, plans=self.config.get("plans", []), locks=locks.template_globals()
        )
        return env

    def render(self, name: str) -> str:
        """Render one file (path relative to sql/) with the project configuration."""
        import jinja2

        try:
            return self._environment().get_template(name).render()
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"sql/{name}: template not found: {exc.name}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"sql/{exc.name or name}:{exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"sql/{name}: {exc.message} (define it in sql/{CONFIG_FILE} or fix the template)"
            ) from None

    # -- files ---------------------------------------------------------------------------------------
    def _load(self, kind: Literal["versioned", "repeatable"], rel: str) -> SqlFile:
        source = (self.sql_dir / rel).read_text(encoding="utf-8")
        directives = _directives(source, rel)
        rendered = self.render(rel)
        filename = rel.rsplit("/", 1)[-1]
        if kind == "versioned":
            match = VERSIONED_NAME.match(filename)
            assert match is not None
            version: int | None = int(match["version"])
        else:
            match = REPEATABLE_NAME.match(filename)
            assert match is not None
            version = None
        return SqlFile(
            kind=kind,
            name=rel,
            version=version,
            description=match["description"],
            rendered=rendered,
            checksum=checksum(rendered),
            transactional="no-transaction" not in directives.get("runner", ()),
            depends=tuple(directives.get("depends", ())),
            finally_=kind == "repeatable" and "finally" in directives.get("runner", ()),
        )

    def created_objects(self) -> dict[str, list[str]]:
        """The tables (and views) and functions the project's files create in its schema, by name, from their
        source (`CREATE [OR REPLACE] TABLE|VIEW|FUNCTION {{ m.q("name") }}`) plus the history table; for
        sql/functions/supabase_access.sql, which must touch these and not the other objects of a shared schema."""
        found: dict[str, set[str]] = {"tables": {self.settings["history_table"]}, "functions": set()}
        for folder in ("tables", "functions"):
            for path in sorted((self.sql_dir / folder).glob("*.sql")):
                for kind, name in CREATED_OBJECT.findall(path.read_text(encoding="utf-8")):
                    found["functions" if kind.upper() in ("FUNCTION", "PROCEDURE") else "tables"].add(name)
        return {kind: sorted(names) for kind, names in found.items()}

    def versioned(self) -> list[SqlFile]:
        """The files of sql/tables/, in version order."""
        folder = self.sql_dir / "tables"
        files: list[SqlFile] = []
        seen: dict[int, str] = {}
        for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
            match = VERSIONED_NAME.match(path.name)
            if match is None:
                raise ProjectError(
                    f"sql/tables/{path.name}: a versioned file is named V<number>__<description>.sql"
                )
            version = int(match["version"])
            if version in seen:
                raise ProjectError(
                    f"sql/tables/{path.name}: version {version} is also used by sql/tables/{seen[version]}"
                )
            seen[version] = path.name
            files.append(self._load("versioned", f"tables/{path.name}"))
        return sorted(files, key=lambda f: f.version or 0)

    def repeatables(self) -> list[SqlFile]:
        """The files of sql/functions/, in dependency order (alphabetical where free); `finally` files last."""
        folder = self.sql_dir / "functions"
        files: dict[str, SqlFile] = {}
        for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
            if REPEATABLE_NAME.match(path.name) is None:
                raise ProjectError(f"sql/functions/{path.name}: use letters, digits and _ in file names")
            loaded = self._load("repeatable", f"functions/{path.name}")
            files[loaded.description] = loaded
        ordered = _dependency_order(files)
        return [f for f in ordered if not f.finally_] + [f for f in ordered if f.finally_]

    def files(self) -> list[SqlFile]:
        """Every table file, then every function file, in apply order, rendered. Rendered again only when
        a file under sql/, the configuration or the runner changed (runner/render_cache.py): unchanged,
        they come from this object or from the cache of an earlier run, without importing Jinja."""
        from runner import render_cache

        key = render_cache.key(self)
        if self._files is not None and self._files[0] == key:
            return list(self._files[1])
        files = render_cache.load(self, key)
        if files is None:
            files = self.versioned() + self.repeatables()
            if render_cache.key(self) == key:  # not edited while rendering: the entry is true for its key
                render_cache.store(self, key, files)
        self._files = (key, files)
        return list(files)

    def find(self, name: str) -> str:
        """Resolve a user-given file name (sql/tables/V001__x.sql, tables/V001__x.sql, V001__x) to sql/-relative."""
        wanted = name.removeprefix("./").removeprefix("sql/")
        candidates = [
            p.relative_to(self.sql_dir).as_posix()
            for p in sorted(self.sql_dir.rglob("*.sql"))
            if not p.relative_to(self.sql_dir).as_posix().startswith("macros/")
        ]
        for rel in candidates:
            if rel == wanted or rel.rsplit("/", 1)[-1] in (wanted, f"{wanted}.sql"):
                return rel
        raise ProjectError(f"no SQL file named {name!r} in {self.sql_dir} (try `runner status`)")


def _bytecode_cache():
    """Jinja's on-disk cache of compiled templates (a private per-user folder under the temp dir, keyed
    by each template's source checksum): saves compiling every file again in each `runner` process.
    A cache that cannot be read or written is skipped, never an error."""
    import jinja2

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - unreadable or corrupt entry (marshal raises many kinds): compile
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    try:
        return QuietCache()
    except (OSError, RuntimeError):  # no usable temp folder: no cache
        return None


def checksum(rendered: str) -> str:
    """SHA-256 of the rendered SQL, normalised: line endings, trailing blanks and comment-only lines
    do not count, so re-indenting or re-wording a comment is not drift; any change to a statement is."""
    lines = []
    for line in rendered.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.rstrip()
        if not stripped or (
            stripped.lstrip().startswith("--") and DIRECTIVE.match(stripped.lstrip()) is None
        ):
            continue
        lines.append(stripped)
    import hashlib  # here: commands that only read the project (report list) start without OpenSSL

    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def sql_literal(value: Any) -> str:
    """Quote a configuration value as a SQL literal (for structure from project.toml, never user input)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if "\x00" in text:
        raise TemplateError("a configuration value contains a NUL character")
    return "'" + text.replace("'", "''") + "'"


def sql_ident(value: Any) -> str:
    """Quote a configuration value as a SQL identifier."""
    text = str(value)
    if re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _directives(source: str, rel: str) -> dict[str, tuple[str, ...]]:
    """Read `-- depends: a, b` and `-- runner: no-transaction` from the file's leading comment lines."""
    found: dict[str, list[str]] = {}
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = DIRECTIVE.match(stripped)
        if match:
            values = [v.strip() for v in match["value"].split(",") if v.strip()]
            found.setdefault(match["key"], []).extend(values)
    for value in found.get("runner", []):
        if value not in ("no-transaction", "finally"):
            raise ProjectError(
                f"sql/{rel}: unknown directive `-- runner: {value}` (known: no-transaction, finally)"
            )
        if value == "finally" and not rel.startswith("functions/"):
            raise ProjectError(f"sql/{rel}: `-- runner: finally` is for files of sql/functions/")
    return {k: tuple(v) for k, v in found.items()}


def _dependency_order(files: dict[str, SqlFile]) -> list[SqlFile]:
    for f in files.values():
        for dep in f.depends:
            if dep not in files:
                raise ProjectError(f"{f.label}: depends on {dep!r}, which is not a file in sql/functions/")
    ordered: list[SqlFile] = []
    done: set[str] = set()
    remaining = dict(sorted(files.items()))
    while remaining:
        ready = [name for name, f in remaining.items() if all(d in done for d in f.depends)]
        if not ready:
            raise ProjectError(f"sql/functions: dependency cycle among {', '.join(sorted(remaining))}")
        for name in ready:
            ordered.append(remaining.pop(name))
            done.add(name)
    return ordered


# -- locating the project ----------------------------------------------------------------------------
def load(project_dir: str | Path | None = None) -> Project:
    """Locate and load the project with its configuration, checked."""
    sql_dir = locate(project_dir)
    return Project(sql_dir=sql_dir, config=read_config(sql_dir))


_from_environment: Project | None = None


def from_environment() -> Project:
    """The project RUNNER_PROJECT_DIR names (else the default), loaded once per process: for callers given
    none, such as the web app's /dashboard and /metrics."""
    global _from_environment
    if _from_environment is None:
        import os

        _from_environment = load(os.environ.get("RUNNER_PROJECT_DIR"))
    return _from_environment
