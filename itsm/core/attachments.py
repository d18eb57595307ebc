"""Attachment stores. The default keeps files in a local folder, named by content hash.

Another store (object storage, a share) is any object with the three methods of
:class:`AttachmentStore`, provided by a plugin's ``itsm_attachment_store`` hook (or a class
named by the ``attachments.store`` setting as ``package.module:ClassName``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Protocol

from itsm.plugin import ItsmError, NotFound


class TooLarge(ItsmError):
    status = 413
    code = "too_large"


class AttachmentStore(Protocol):
    """What the core asks of a store of attachments' files."""

    def put(self, stream: IO[bytes], *, limit: int) -> tuple[str, int, str]:
        """Keep the stream's bytes; return (key, size, sha256 hex digest). Raise
        :class:`TooLarge` past ``limit`` bytes, keeping nothing."""

    def open(self, key: str) -> IO[bytes]:
        """The file kept under ``key``, open for reading; :class:`NotFound` if missing."""

    def delete(self, key: str) -> None:
        """Forget the file kept under ``key`` (nothing happens if it is missing)."""


class LocalFolderStore:
    """Files under one folder, sharded by the first bytes of their SHA-256."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def put(self, stream: IO[bytes], *, limit: int) -> tuple[str, int, str]:
        """Store the stream; return (key, size, sha256). Refuses more than ``limit`` bytes."""
        # Owner only (0700), as the files themselves (mkstemp makes them 0600).
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"the file is larger than {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            hexdigest = digest.hexdigest()
            key = f"{hexdigest[:2]}/{hexdigest}"
            target = self.path / key
            target.parent.mkdir(exist_ok=True, mode=0o700)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key, size, hexdigest

    def open(self, key: str) -> IO[bytes]:
        target = (self.path / key).resolve()
        if self.path.resolve() not in target.parents or not target.is_file():
            raise NotFound("the attachment's file is missing from the store")
        return target.open("rb")

    def delete(self, key: str) -> None:
        (self.path / key).unlink(missing_ok=True)
