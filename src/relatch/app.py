"""The one place Relatch is assembled: settings, engine, stores, pools, workers, hooks,
the ASGI application (API under /v1, the pages) and the command line.

Nothing imports this module except the entry points: the `relatch` console script (`cli`),
uvicorn's factory string (`create_app_from_env`) and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker

from relatch.cli.main import make_cli
from relatch.core.hashing import Argon2Params
from relatch.http import docs, errors, health, openapi
from relatch.http.middleware import BodyLimit, RequestContext, TrustedHosts, allowed_hosts
from relatch.http.routes import account as account_routes
from relatch.http.routes import activation as activation_routes
from relatch.http.routes import apikeys as apikey_routes
from relatch.http.routes import email_change as email_change_routes
from relatch.http.routes import mfa as mfa_routes
from relatch.http.routes import oauth as oauth_routes
from relatch.http.routes import oauth_apps as oauth_app_routes
from relatch.http.routes import password as password_routes
from relatch.http.routes import reset as reset_routes
from relatch.http.routes import sessions as session_routes
from relatch.http.routes import users as user_routes
from relatch.http.routes import users_by_id as users_by_id_routes
from relatch.infra import metrics
from relatch.infra.hashing_pool import HashingPool
from relatch.mail.render import TemplateRenderer
from relatch.mail.worker import transport_for
from relatch.services.context import Services, utcnow
from relatch.services.limits import Limits, Policy
from relatch.services.ports import Clock, LimitStore
from relatch.settings import Settings, get_settings
from relatch.storage.db import make_engine, make_sessionmaker
from relatch.storage.limits_redis import RedisLimitStore
from relatch.storage.limits_sql import SqlLimitStore
from relatch.storage.oauth_repo import revoke_for_user
from relatch.web import account_page, account_signin
from relatch.web import email_undo as email_undo_pages
from relatch.web import logs as web_logs
from relatch.web import not_me as not_me_pages
from relatch.web import pages as web_pages
from relatch.web.headers import PageHeaders
from relatch.web.templating import STATIC_DIR
from relatch.workers import Workers

log = logging.getLogger(__name__)

# How long the workers may take, at shutdown, to finish the item they hold: with
# RELATCH_SHUTDOWN_TIMEOUT_SECONDS (requests in flight, at most 7 s) the process exits
# within 10 s of SIGTERM.
WORKER_DRAIN_SECONDS = 2.0


def build_limits(settings: Settings, sessions: sessionmaker[Session]) -> Limits:
    """The use cases' limits (services/limits.py) on their counters: Redis when
    RELATCH_REDIS_URL is set, else the database."""
    store: LimitStore
    if settings.redis_url:
        store = RedisLimitStore(settings.redis_url, settings.redis_prefix)
    else:
        store = SqlLimitStore(sessions)
    return Limits(Policy.from_settings(settings), store, settings.secret)


def build(settings: Settings, clock: Clock = utcnow) -> Services:
    """The services of one process, with their hooks wired."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = make_sessionmaker(engine)
    params = Argon2Params(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    svc = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        pool=HashingPool(
            params, settings.hash_workers, settings.hash_queue, nice=settings.hash_nice
        ),
        renderer=TemplateRenderer(settings.public_url),
        clock=clock,
        limits=build_limits(settings, sessions),
    )
    # Issue 4: a reset or password change revokes every OAuth2 token and code of the account.
    svc.on_password_changed.append(revoke_for_user)
    return svc


def create_app(settings: Settings | None = None, svc: Services | None = None) -> FastAPI:
    settings = settings or (svc.settings if svc else get_settings())
    services = svc or build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.run_workers:
            yield
            return
        stopping = anyio.Event()
        workers = Workers(services, transport_for(services))
        app.state.workers = workers  # GET /readyz asks them (http/health.py)
        async with anyio.create_task_group() as tg:
            tg.start_soon(workers.run_forever, stopping)
            try:
                yield
            finally:
                # Graceful shutdown (issue 10): uvicorn has stopped accepting and let the
                # requests in flight finish (RELATCH_SHUTDOWN_TIMEOUT_SECONDS); now each
                # worker finishes the item it holds (a mail is sent or released, a reset
                # request decided or left for the next pass) and stops. Only past
                # WORKER_DRAIN_SECONDS is it cancelled; a mail cut off mid-send stays
                # `sending` until its claim expires and is then retried, never lost.
                stopping.set()
                workers.stop()
                metrics.process_exiting()
                tg.cancel_scope.deadline = anyio.current_time() + WORKER_DRAIN_SECONDS

    app = FastAPI(
        title="Relatch",
        lifespan=lifespan,
        # Relatch's metrics are its own (infra/metrics.py, /metrics); FastAPI's OpenTelemetry
        # bridge, unused, asked the global providers three questions on every request
        # (issue 12: ~1.5 % of a reset request's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_url="/v1/openapi.json",
        docs_url=None,  # FastAPI's page loads an unpinned Swagger UI: see http/docs.py
        redoc_url=None,
    )
    app.state.services = services
    app.state.settings = settings
    app.state.workers = None  # this process's Workers, while they run (lifespan)
    errors.install(app)
    health.install(app, serve_metrics=settings.metrics)
    app.include_router(reset_routes.router, prefix="/v1")
    app.include_router(user_routes.router, prefix="/v1")
    app.include_router(oauth_routes.router, prefix="/v1")
    app.include_router(password_routes.router, prefix="/v1")
    app.include_router(activation_routes.router, prefix="/v1")
    app.include_router(account_routes.router, prefix="/v1")
    app.include_router(users_by_id_routes.router, prefix="/v1")
    app.include_router(not_me_pages.router)
    app.include_router(mfa_routes.router, prefix="/v1")
    app.include_router(mfa_routes.own, prefix="/v1")
    app.include_router(apikey_routes.router, prefix="/v1")
    app.include_router(session_routes.router, prefix="/v1")
    app.include_router(oauth_app_routes.router, prefix="/v1")
    app.include_router(email_change_routes.router, prefix="/v1")
    app.include_router(email_undo_pages.router)
    app.include_router(web_pages.router)
    app.include_router(account_page.router)
    app.include_router(account_signin.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    openapi.install(app)
    if settings.docs:
        docs.install(app, openapi_url="/v1/openapi.json")
    web_logs.install()
    app.add_middleware(PageHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # Before the body is read: a request for another host is refused unread.
    app.add_middleware(
        TrustedHosts, hosts=allowed_hosts(settings.public_url, settings.allowed_hosts)
    )
    app.add_middleware(RequestContext, metrics=settings.metrics)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for `relatch serve --workers N`."""
    return create_app()


# The `relatch` console script (pyproject.toml): every command builds its services here.
cli = make_cli(build)


if __name__ == "__main__":
    cli()
