"""`runner apply`, `status`, `compile`, `verify`, `baseline`: the SQL project against a database."""

from __future__ import annotations

import sys

import click

from runner.cli import EXIT_PENDING, FORMAT, Context, emit


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and the rendered SQL; change nothing.")
@click.option(
    "--check",
    is_flag=True,
    help=f"Exit {EXIT_PENDING} when something is pending, 0 when not; change nothing.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    envvar="RUNNER_LOCK_TIMEOUT",
    help="How long to wait for another apply (env RUNNER_LOCK_TIMEOUT).",
)
@click.option(
    "--lint",
    "lint_first",
    is_flag=True,
    help="Run `runner lint` first (summary on stderr); stop with exit 1 on any finding.",
)
@FORMAT
@click.pass_obj
def apply(obj: Context, dry_run: bool, check: bool, lock_timeout: float, lint_first: bool, fmt: str) -> None:
    """Apply pending tables (once each, in order) and changed functions.

    Each file runs in its own transaction together with its history row; an advisory lock makes
    concurrent applies wait for each other. An edited, already-applied table file is refused (exit 4).
    With STRIPE_WEBHOOK_SECRET set, an empty webhook_secrets gets its secrets (the database verifies
    Stripe's signatures too; `runner webhook secret` manages them later).

    \b
    Examples:
      runner apply
      runner apply --dry-run             # plan and rendered SQL
      runner apply --check || echo "migrations pending (exit 3)"
      runner apply --format json
      runner apply --check --lint        # CI: lint findings exit 1, pending files exit 3
    """
    from runner import migrate

    project = obj.project
    if lint_first:
        from runner.quality import lint

        lint.lint(project, obj.url, on_result=lambda r: click.echo(r.to_text(), err=True))
    if check or dry_run:
        result = migrate.apply(lambda: obj.connect("apply --check"), project, dry_run=True)
        if fmt == "json":
            emit({**result.as_dict(), "pending": len(result.steps)}, fmt, "")
        else:
            for step in result.steps:
                click.echo(f"pending  {step.action:<8} sql/{step.name}")
            if dry_run and not check:
                files = {f.name: f for f in project.files()}
                for step in result.steps:
                    click.echo(
                        f"\n-- ===== sql/{step.name} ({step.action}) =====\n{files[step.name].rendered.rstrip()}"
                    )
            click.echo(
                f"{len(result.steps)} file(s) pending" if result.steps else "Nothing to apply: up to date."
            )
        if check and result.steps:
            sys.exit(EXIT_PENDING)
        return

    def progress(f, action):
        if fmt == "text":
            click.echo(f"{action:<8} {f.label}", err=True)

    result = migrate.apply(lambda: obj.connect("apply"), project, lock_timeout=lock_timeout, on_step=progress)
    _seed_webhook_secrets(obj)
    if fmt == "json":
        emit(result.as_dict(), fmt, "")
    elif result.steps:
        click.echo(f"Applied {len(result.steps)} file(s) in {result.seconds:.2f}s.")
    else:
        click.echo(f"Nothing to apply: up to date ({result.seconds:.2f}s).")


def _seed_webhook_secrets(obj: Context) -> None:
    """A fresh deployment (or one upgraded to the database's own signature check): STRIPE_WEBHOOK_SECRET's
    secrets go into an empty webhook_secrets, so Stripe's deliveries verify there from the first one."""
    from runner.settings import webhook_secrets_from_env

    secrets = webhook_secrets_from_env()
    if not secrets:
        return
    from runner.payments import webhook_secrets

    with obj.connect("apply") as conn:
        stored = webhook_secrets.seed_from_env(conn, secrets)
    if stored:
        click.echo(
            f"Stored {len(stored)} webhook signing secret(s) of STRIPE_WEBHOOK_SECRET in the empty "
            "webhook_secrets (`runner webhook secret list`).",
            err=True,
        )


@click.command()
@FORMAT
@click.pass_obj
def status(obj: Context, fmt: str) -> None:
    """Show each SQL file as applied, pending, drifted, changed or missing.

    \b
    drifted: a table file edited after it was applied (apply refuses; see its message)
    changed: a function file edited since it was applied (apply re-applies it)
    missing: in the history, but the file is gone

    \b
    Examples:
      runner status
      runner status --format json | jq '.[] | select(.state != "applied")'
    """
    from dataclasses import asdict

    from runner import migrate

    conn = obj.connect("status")
    try:
        rows = migrate.status(conn, obj.project)
    finally:
        conn.close()
    lines = [
        f"{r.state:<8} {r.kind:<10} sql/{r.name}"
        + (f"  (applied {r.applied_at[:19]})" if r.applied_at else "")
        for r in rows
    ]
    emit([asdict(r) for r in rows], fmt, "\n".join(lines) or "No SQL files.")


@click.command(name="compile")
@click.argument("file", required=False)
@click.pass_obj
def compile_(obj: Context, file: str | None) -> None:
    """Print the rendered SQL of FILE, or of every table and function file in apply order.

    \b
    Examples:
      runner compile                                  # the whole project
      runner compile sql/functions/complete_checkout_session.sql
      runner compile V003__payment_checkout_sessions
    """
    project = obj.project
    if file:
        click.echo(project.render(project.find(file)), nl=False)
        return
    for f in project.files():
        click.echo(f"-- ===== {f.label} =====\n{f.rendered.rstrip()}\n")


@click.command()
@FORMAT
@click.pass_obj
def verify(obj: Context, fmt: str) -> None:
    """Check tables, functions and indexes exist and smoke-test the functions (rolled back).

    Exits 1 when any check fails.

    \b
    Examples:
      runner verify
      runner verify --format json
    """
    from dataclasses import asdict

    from runner import verify as verify_mod
    from runner.errors import VerifyFailed

    conn = obj.connect("verify")
    try:
        checks = verify_mod.run(conn, obj.project)
    finally:
        conn.close()
    emit(
        [asdict(c) for c in checks],
        fmt,
        "\n".join(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in checks),
    )
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerifyFailed(
            f"{len(failed)} of {len(checks)} checks failed: {', '.join(c.name for c in failed)}"
        )


@click.command()
@click.argument("file")
@click.option(
    "--lock-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS"
)
@click.pass_obj
def baseline(obj: Context, file: str, lock_timeout: float) -> None:
    """Record FILE as applied with its current checksum, without running it.

    For resolving drift on purpose: the database already matches the edited file.

    \b
    Examples:
      runner baseline sql/tables/V003__payment_checkout_sessions.sql
    """
    from runner import migrate

    f = migrate.baseline(lambda: obj.connect("baseline"), obj.project, file, lock_timeout)
    click.echo(f"Recorded {f.label} as applied (checksum {f.checksum[:12]}).")
