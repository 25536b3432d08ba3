"""The job's admin credential (light: no Ray, no numpy; read by drivers and the actor).

The coordinator issues it at its first start and keeps it in ``<checkpoint dir>/`` +
``ADMIN_FILE`` with mode 0600; a restarted coordinator reads the same one back. The driver
that started the job reads it from the same folder and passes it on every control call
(``run``, ``stop``, ``close``, ``set_budget``, ``snapshot``, state reads, crash injection).
"""

from __future__ import annotations

import os
import secrets

#: file in the checkpoint directory holding the job's admin credential (mode 0600)
ADMIN_FILE = "admin.credential"


def load_admin_credential(directory: str, *, create: bool = False) -> str:
    """The job's admin credential, kept in ``<directory>/admin.credential`` (mode 0600).

    ``create``: issue one if the file does not exist (the coordinator does, at start; a
    restarted coordinator reads the same one back). Raises ``FileNotFoundError`` otherwise,
    ``PermissionError`` if others may read it, ``ValueError`` if it holds no credential."""
    path = os.path.join(directory, ADMIN_FILE)
    if create and not os.path.exists(path):
        token = secrets.token_hex(32)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, token.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a credential another process just wrote
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise PermissionError(f"{path}: readable by others (mode {st.st_mode & 0o777:o}); "
                              f"expected 0600")
    with open(path) as f:
        token = f.read().strip()
    if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError(f"{path}: not an admin credential")
    return token


__all__ = ["ADMIN_FILE", "load_admin_credential"]
