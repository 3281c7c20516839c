"""Writing to the reference's error_logs table, which support reads by category (stripe, webhook, ...)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def record(conn: psycopg.Connection, category: str, message: str, **context: Any) -> None:
    """Insert one error_logs row. Never raises: failing to log must not hide the error being logged."""
    try:
        conn.execute(
            "SELECT log_error(%s, %s, %s::jsonb)",
            (category, message, json.dumps(context, default=str)),
        )
    except Exception as exc:  # noqa: BLE001 - the database may be the very thing that failed
        log.warning("could not write error_logs (%s: %s): %s", category, message, exc)
