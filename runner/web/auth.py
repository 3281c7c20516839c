"""Who is calling the checkout API: an end user (a bearer JWT, HS256, `sub` = user id, e.g. a Supabase access
token) or a trusted backend (the bearer SERVICE_TOKEN, which may act for any user)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

import jwt

from runner.errors import Forbidden, Unauthorized
from runner.settings import Settings


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (user_id set) or the service (is_service, acting for any user)."""

    user_id: uuid.UUID | None
    is_service: bool = False


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthorized when there is none."""
    if not authorization:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be: Bearer <token>")
    return token.strip()


def authenticate(authorization: str | None, settings: Settings) -> Principal:
    """Check the bearer credentials: the service token (constant-time compare), else a user JWT."""
    if not settings.jwt_secret and not settings.service_token:
        raise Unauthorized("authentication is not configured on this server (JWT_SECRET / SERVICE_TOKEN)")
    token = bearer_token(authorization)
    if settings.service_token and hmac.compare_digest(token.encode(), settings.service_token.encode()):
        return Principal(user_id=None, is_service=True)
    if not settings.jwt_secret:
        raise Unauthorized("invalid token")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],  # fixed here, never taken from the token's own header
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub"], "verify_aud": bool(settings.jwt_audience)},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    try:
        return Principal(user_id=uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise Unauthorized("invalid token: sub is not a user id") from None


def same_token(token: str, expected: str | None) -> bool:
    """Constant-time comparison with a configured token (never equal to an unset one)."""
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def authorize_dashboard(authorization: str | None, settings: Settings) -> None:
    """/dashboard opens with DASHBOARD_TOKEN (which can do nothing else) or the service token; a user's JWT
    is Forbidden, anything else Unauthorized."""
    token = bearer_token(authorization)
    if same_token(token, settings.dashboard_token) or same_token(token, settings.service_token):
        return
    if not authenticate(authorization, settings).is_service:  # a valid user token: known, not allowed
        raise Forbidden("the dashboard needs DASHBOARD_TOKEN or the service token")


def authorize_metrics(authorization: str | None, settings: Settings) -> None:
    """/metrics is open unless METRICS_TOKEN is set; then it needs that bearer token."""
    if settings.metrics_token and not same_token(bearer_token(authorization), settings.metrics_token):
        raise Unauthorized("invalid token for /metrics (expected: Bearer <METRICS_TOKEN>)")
