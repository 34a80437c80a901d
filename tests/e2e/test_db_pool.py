"""RELATCH_DB_POOL_SIZE (issue 13, running it for real): `relatch serve --workers 2` on
PostgreSQL holds at most workers x 3 x pool connections to its database (each process:
its pool plus twice as many overflow; README, Configuration), however much load comes.
The connections of the test's own database are counted in pg_stat_activity while 40
clients send requests that each take a connection."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from relatch.storage.db import PG_OVERFLOW_PER_POOLED, normalise_url
from tests.e2e.browser import in_ci
from tests.e2e.servers import relatch_server
from tests.helpers.database import fresh_postgres_database
from tests.helpers.pg_pool import pg_base_url

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WORKERS = 2
POOL = 1
CLIENTS = 40
REQUESTS = 200


class Sampler(threading.Thread):
    """The most connections to `database` seen, polled until stopped."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.most = 0
        self.stop = threading.Event()
        self.engine = create_engine(normalise_url(pg_base_url()))

    def run(self) -> None:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d")
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                seen = int(conn.execute(query, {"d": self.database}).scalar_one())
                self.most = max(self.most, seen)
                conn.rollback()
                time.sleep(0.01)
        self.engine.dispose()


async def load(base: str) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        sem = asyncio.Semaphore(CLIENTS)

        async def one(i: int) -> int:
            async with sem:
                body = {"email": f"nobody{i}@example.com"}
                resp = await client.post("/v1/api-user-request-reset-password", json=body)
                return resp.status_code

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def test_two_workers_stay_within_their_pools(tmp_path: Path) -> None:
    try:
        db = fresh_postgres_database()
        url = db.__enter__()
    except OperationalError as exc:
        reason = f"PostgreSQL is not reachable: {str(exc.orig).strip()[:200]}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        env = {
            "RELATCH_DATABASE_URL": url,
            "RELATCH_DB_POOL_SIZE": str(POOL),
            "RELATCH_LIMIT_RESET_PER_ADDRESS": "off",
            "RELATCH_LIMIT_RESET_PER_IP": "off",
        }
        with relatch_server(tmp_path, workers=WORKERS, **env) as srv:
            sampler = Sampler(str(make_url(url).database))
            sampler.start()
            try:
                codes = asyncio.run(load(srv.url))
            finally:
                sampler.stop.set()
                sampler.join(10)
        bound = WORKERS * POOL * (1 + PG_OVERFLOW_PER_POOLED)
        assert set(codes) == {200}, sorted(set(codes))
        assert 0 < sampler.most <= bound, (sampler.most, bound)
    finally:
        db.__exit__(None, None, None)
