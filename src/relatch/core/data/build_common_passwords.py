"""Rebuild common-passwords.txt.gz from the two pip-downloadable sources named in SOURCES.md.

    pip download --no-deps django==5.2.19 zxcvbn==4.5.0 -d /tmp/pw
    python src/relatch/core/data/build_common_passwords.py /tmp/pw

Not imported by Relatch: a maintenance script, kept so the shipped list can be reproduced.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
MIN, MAX = 8, 1024  # shorter ones are refused by the length rule anyway


def _django(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read("django/contrib/auth/common-passwords.txt.gz")
    return set(gzip.decompress(raw).decode().split())


def _zxcvbn(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("zxcvbn/frequency_lists.py").decode()
    namespace: dict[str, object] = {}
    exec(compile(source, "frequency_lists.py", "exec"), namespace)  # noqa: S102 (pinned wheel)
    lists = namespace["FREQUENCY_LISTS"]
    assert isinstance(lists, dict)
    return set(lists["passwords"])


def main(folder: str) -> None:
    base = Path(folder)
    words = _django(next(base.glob("django-*.whl"))) | _zxcvbn(next(base.glob("zxcvbn-*.whl")))
    kept = sorted({w.strip().lower() for w in words if MIN <= len(w.strip()) <= MAX})
    buf = io.BytesIO()
    # mtime=0: the same inputs give the same bytes.
    with gzip.GzipFile("common-passwords.txt", "wb", fileobj=buf, mtime=0) as gz:
        gz.write(("\n".join(kept) + "\n").encode())
    (HERE / "common-passwords.txt.gz").write_bytes(buf.getvalue())
    print(f"{len(kept)} passwords")


if __name__ == "__main__":
    main(sys.argv[1])
