"""JWT bearer authentication and roles.

Roles are ranked: `scorer` may predict, `analyst` may also explain, batch-score and read
model information, `admin` may do everything (promotion and rollout actions). Verified
tokens are cached until they expire, so the hot path pays for a signature check once
per token, not once per request.

A token must name this service's issuer and audience, carry `sub`, `iat` and `exp`,
live no longer than the configured maximum (exp - iat), and be signed with the one
configured algorithm and key; clocks may disagree by the configured leeway. Every
refusal is a 401 whose message never repeats the token.

A route states its role in its `opt` (`opt=requires("analyst")`) and the authentication
middleware checks it: Litestar runs a synchronous guard in a thread pool and copies the
route handler for every call, which alone cost more than scoring a customer."""

from __future__ import annotations

import hmac
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from serving.settings import JWT_AUDIENCE, JWT_LEEWAY_SECONDS, JWT_MAX_TTL_SECONDS

ROLES = ("scorer", "analyst", "admin")
BEARER_SCHEME = "BearerToken"  # the OpenAPI security scheme of every /v1 route
ROLE_OPT = "role"
SECURED: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]
CACHE_SIZE = 10_000
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp"]


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    expires_at: float

    def rank(self) -> int:
        return max((ROLES.index(r) for r in self.roles if r in ROLES), default=-1)


def mint_token(
    subject: str,
    role: str,
    ttl_seconds: int,
    key: str,
    algorithm: str,
    issuer: str,
    *,
    audience: str = JWT_AUDIENCE,
    max_ttl_seconds: int = JWT_MAX_TTL_SECONDS,
) -> str:
    """A signed token for `subject` with one role (HS256: key is the shared secret;
    RS256: key is the PEM private key); refuses what the service would refuse."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    if ttl_seconds < 1:
        raise ValueError("the token lifetime must be at least one second")
    if ttl_seconds > max_ttl_seconds:
        raise ValueError(
            f"a token may live at most {max_ttl_seconds} s (CHURN_JWT_MAX_TTL_SECONDS); "
            f"{ttl_seconds} s asked"
        )
    problem = subject_problem(subject)
    if problem:
        raise ValueError(problem)
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": [role],
        "iat": now,
        "exp": now + ttl_seconds,
        "iss": issuer,
        "aud": audience,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=algorithm)


def subject_problem(subject: str) -> str | None:
    """Why `subject` cannot name a caller: it keys the rate limit in Redis and is
    written to the prediction log and the promotion ledger, so it must be UTF-8 text."""
    if not subject:
        return "the subject must not be empty"
    try:
        subject.encode()
    except UnicodeEncodeError:
        return "the subject must be valid Unicode text (no lone surrogates)"
    return None


class TokenVerifier:
    def __init__(
        self,
        key: str,
        algorithm: str,
        issuer: str,
        *,
        audience: str = JWT_AUDIENCE,
        max_ttl_seconds: int = JWT_MAX_TTL_SECONDS,
        leeway_seconds: int = JWT_LEEWAY_SECONDS,
    ) -> None:
        self.key = key
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.max_ttl_seconds = max_ttl_seconds
        self.leeway_seconds = leeway_seconds
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at > time.time():
            return cached
        try:
            # one algorithm only: `none`, and HS256 signed with an RS256 public key, fail
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthorizedException("token expired") from exc
        except jwt.InvalidTokenError as exc:  # PyJWT's messages name the claim, not the token
            raise NotAuthorizedException(f"invalid token: {exc}") from exc
        # decode() checked both are integers (or numbers that convert to one)
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > self.max_ttl_seconds:
            raise NotAuthorizedException(
                f"invalid token: it lives {lifetime} s, more than the {self.max_ttl_seconds} s "
                "allowed"
            )
        problem = subject_problem(claims["sub"])  # decode() checked it is a string
        if problem:
            raise NotAuthorizedException(f"invalid token: {problem}")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise NotAuthorizedException("invalid token: roles must be a list of names")
        principal = Principal(claims["sub"], frozenset(roles), float(claims["exp"]))
        self._cache[token] = principal
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Every route under /v1 needs `Authorization: Bearer <jwt>`."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorizedException(
                "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        verifier: TokenVerifier = connection.app.state.verifier
        try:
            principal = verifier.verify(token.strip())
        except NotAuthorizedException as exc:
            raise NotAuthorizedException(
                exc.detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from exc
        # a /v1 route that forgot to state its role is admin-only, not open
        needed = connection.route_handler.opt.get(ROLE_OPT, "admin")
        if principal.rank() < ROLES.index(needed):
            raise PermissionDeniedException(f"this route needs the {needed} role")
        return AuthenticationResult(user=principal, auth=token)


def bearer_matches(authorization: str, expected: str) -> bool:
    """Whether an Authorization header carries `Bearer <expected>` (a static token, such
    as the metrics token), compared in constant time."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )


def requires(role: str) -> dict[str, str]:
    """Route options admitting principals holding `role` or a higher one."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return {ROLE_OPT: role}
