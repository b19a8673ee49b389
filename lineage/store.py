"""Content-addressed file store under ``DATAWARD_HOME/store``.

A blob lives at ``store/sha256/ab/cdef....EXT`` named by the SHA-256 of its bytes
and the extension of its format (so readers that go by extension can open it).
Writes go to a temporary file in the same folder and are renamed into place, so
a crash leaves either the whole blob or nothing; storing existing content is a
no-op.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CHUNK = 1 << 20
EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class ContentStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path_for(self, digest: str, fmt: str = "") -> Path:
        ext = EXTENSIONS.get(fmt, "")
        return self.root / "sha256" / digest[:2] / f"{digest[2:]}{ext}"

    def has(self, digest: str, fmt: str = "") -> bool:
        return self.path_for(digest, fmt).is_file()

    def put(self, src: str | os.PathLike[str], digest: str, fmt: str = "") -> tuple[Path, bool]:
        """Copy ``src`` into the store under ``digest``; returns (path, created).

        The copy is re-hashed before it is published, so a file that changed
        while it was read is refused rather than stored under a wrong name.
        """
        dest = self.path_for(digest, fmt)
        if dest.is_file():
            return dest, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != digest:
                raise OSError(f"{src} changed while it was being stored")
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest, True

    def remove(self, digest: str, fmt: str = "") -> None:
        self.path_for(digest, fmt).unlink(missing_ok=True)

    def verify(self, digest: str, fmt: str = "") -> str | None:
        """None if the blob is intact, else a sentence saying what is wrong."""
        path = self.path_for(digest, fmt)
        if not path.is_file():
            return f"blob {digest[:12]} is missing from the store"
        actual, _ = sha256_file(path)
        if actual != digest:
            return f"blob {digest[:12]} was modified (now hashes to {actual[:12]})"
        return None


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy a file so that ``dest`` appears whole or not at all."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
