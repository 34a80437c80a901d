"""`make bench`: `relatch user import` of 100,000 rows (issue 13's target: under 2 minutes
and 200 MB on this machine). Reports the wall time and the importing process's peak
resident memory. Imports store, they do not hash: the file's hashes are made once here
(cheap parameters, a few per format, reused) and are not part of the timing.

BENCH_IMPORT_ROWS changes the row count; BENCH_IMPORT_DATABASE_URL imports into that
(empty, migrated by the script) database instead of a new SQLite file.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt
from argon2 import PasswordHasher, Type

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
RELATCH = Path(sys.executable).parent / "relatch"
PER_FORMAT = 20


def sample_hashes() -> list[str]:
    made: list[str] = []
    for i in range(PER_FORMAT):
        pw = f"bench password {i}".encode()
        salt = f"salt{i:04d}"
        made.append(PasswordHasher(1, 64, 1, type=Type.ID).hash(pw))
        made.append(bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4)).decode())
        digest = hashlib.pbkdf2_hmac("sha256", pw, salt.encode(), 10)
        made.append(f"pbkdf2_sha256$10${salt}${base64.b64encode(digest).decode()}")
        digest = hashlib.scrypt(pw, salt=salt.encode(), n=16, r=8, p=1, dklen=64)
        made.append(f"scrypt$16${salt}$8$1${base64.b64encode(digest).decode()}")
    return made


def write_file(path: Path) -> None:
    hashes = sample_hashes()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "username", "name", "password_hash", "activated"])
        for i in range(ROWS):
            stored = hashes[i % len(hashes)]
            writer.writerow([f"user{i}@example.com", f"user{i:07d}", f"User {i}", stored, i % 2])


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELATCH), *args], env=env, capture_output=True, text=True, check=False
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELATCH_")}
        env.update(
            RELATCH_DATABASE_URL=os.environ.get(
                "BENCH_IMPORT_DATABASE_URL", f"sqlite:///{work / 'bench.db'}"
            ),
            RELATCH_SECRET_KEY="bench-" + "k" * 40,
            RELATCH_MAIL_DIR=str(work / "mail"),
        )
        source = work / "users.csv"
        write_file(source)
        assert run(env, "migrate").returncode == 0
        started = time.perf_counter()
        done = run(env, "user", "import", str(source))
        took = time.perf_counter() - started
        # ru_maxrss of the children: the largest resident set of any of them (KiB on Linux),
        # here the import (the migrate before it is smaller).
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if done.returncode != 0:
            raise SystemExit(f"import failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        imported = next(line for line in done.stdout.splitlines() if line.startswith("imported:"))
        size_mib = source.stat().st_size / 1024 / 1024
        print(
            f"user import: {ROWS} rows ({size_mib:.1f} MiB CSV) in {took:.1f} s "
            f"({ROWS / took:.0f} rows/s), peak memory {peak_mib:.0f} MiB; {imported}"
        )


if __name__ == "__main__":
    main()
