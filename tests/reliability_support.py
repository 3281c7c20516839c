"""Shared by the property, fuzz and soak tests: how many examples to run, hostile input, and the checks that
no response or log line carries a traceback or a secret.

The default run keeps example counts small (the whole suite runs twice in CI). RELIABILITY_SCALE=N runs N
times as many examples, e.g. `RELIABILITY_SCALE=25 pytest tests/web/test_fuzz_http.py` (docs/reliability.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.fake_stripe import API_KEY
from tests.payments_support import JWT_SECRET, OLD_WEBHOOK_SECRET, SERVICE_TOKEN, WEBHOOK_SECRET

SCALE = max(1, int(os.environ.get("RELIABILITY_SCALE", "1") or 1))

# A password in the test database URL: the server trusts local connections, so it is never checked, but
# it must never be shown either.
DB_PASSWORD = "db-password-never-shown-7c1e"
SECRETS = (JWT_SECRET, SERVICE_TOKEN, WEBHOOK_SECRET, OLD_WEBHOOK_SECRET, API_KEY, DB_PASSWORD)


def examples(default: int) -> int:
    """The example count of a hypothesis test: `default`, times RELIABILITY_SCALE."""
    return default * SCALE


def budget(default_examples: int) -> settings:
    """Settings of a property or fuzz test: no deadline (the machine may be loaded), shared fixtures
    (one database for all examples of a test), `examples(default_examples)` examples."""
    return settings(
        max_examples=examples(default_examples),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def leaks(text: str) -> list[str]:
    """What `text` shows that it must not: a traceback, or one of the secrets."""
    found = [s for s in SECRETS if s in text]
    if "Traceback (most recent call last)" in text:
        found.append("traceback")
    return found


# Strings that broke parsers before: NUL, lone surrogates, RTL and zero-width marks, emoji, CR/LF,
# format strings, SQL, JSON and HTML fragments, long runs.
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\ud83d",
    "\u202e\u0644\u0627",
    "\u200b",
    "\ufeff",
    "💳🔥",
    "👨\u200d👩\u200d👧",
    "\r\n",
    "a\rb\nc",
    "%s%s%n",
    "{0}",
    "%(x)s",
    "'; DROP TABLE users; --",
    "\\u0000",
    '{"a":',
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "NaN",
    "-0",
    "1e999999",
    "A" * 10_000,
    "é" * 3000,
    "\U0010ffff",
    "\x7f\x1b[31m",
]

nasty_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20),
)
absurd_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.just(10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 1e308, -1e-308]),
)
scalars = st.one_of(st.none(), st.booleans(), absurd_numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12,
)


def deeply_nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth
