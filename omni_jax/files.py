"""Every read and write of a work directory or data directory goes through here.

Each helper turns what the operating system, the decoders and the archive
readers raise (``OSError``, ``UnicodeDecodeError``, ``json.JSONDecodeError``,
``zipfile.BadZipFile``, ...) into an :class:`~omni_jax.errors.OmniJaxError`
that names the file, says what is wrong with it in words (a directory where
a file was expected, permission denied, the disk is full, not valid JSON)
and what to do about it. The CLI prints it as one line.

Writes are atomic: the bytes go to a temporary file beside the target, are
flushed to disk, and replace the target with ``os.replace``, so a reader (or
a rerun after a crash) sees the old file or the new one, never half of one.
New files get the usual permissions (``0o666`` less the umask, as ``open``
gives), not the owner-only mode of :func:`tempfile.mkstemp`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from omni_jax.errors import OmniJaxError

PathLike = Union[str, os.PathLike]

# Errors a damaged or misplaced file produces while it is read or written.
FILE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)

_ERRNO_WORDS = {
    errno.ENOENT: "it does not exist",
    errno.EISDIR: "it is a directory, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on the device (the disk is full)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EEXIST: "something is already there",
    errno.ENOTEMPTY: "a directory that is not empty is in the way",
    errno.EIO: "an input/output error of the device",
    errno.ENAMETOOLONG: "the name is too long",
}


def reason(e: BaseException) -> str:
    """What went wrong, in a few words (no traceback, one line)."""
    if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[e.errno]
    if isinstance(e, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte {e.start})"
    if isinstance(e, json.JSONDecodeError):
        return f"it is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    if isinstance(e, zipfile.BadZipFile):
        return f"it is not a valid zip archive ({e})"
    text = str(e).splitlines()[0][:200] if str(e) else ""
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _hint(e: BaseException, default: str) -> str:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space (or use another directory) and run again"
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "fix its permissions or use another directory"
    return default


def error(path: PathLike, action: str, e: BaseException, hint: str) -> OmniJaxError:
    """The one-line error for ``action`` (``"read"``, ``"write"``, ...) on ``path`` failing with ``e``."""
    return OmniJaxError(f"cannot {action} {path}: {reason(e)}; {_hint(e, hint)}")


@contextlib.contextmanager
def guarded(path: PathLike, action: str, hint: str = "move it aside or restore it, and run again") -> Iterator[None]:
    """Runs the block, turning a file error into an :class:`OmniJaxError` about ``path``."""
    try:
        yield
    except OmniJaxError:
        raise
    except FILE_ERRORS as e:
        raise error(path, action, e, hint) from None


# ---------------------------------------------------------------------------- reading

MOVE_ASIDE = "move it aside or restore it, and run again"


def read_bytes(path: PathLike, hint: str = MOVE_ASIDE) -> bytes:
    with guarded(path, "read", hint):
        return Path(path).read_bytes()


def read_text(path: PathLike, hint: str = MOVE_ASIDE) -> str:
    with guarded(path, "read", hint):
        return Path(path).read_bytes().decode("utf-8")


def read_json(path: PathLike, hint: str = MOVE_ASIDE, expect: Optional[type] = None) -> Any:
    """The JSON value in ``path``; with ``expect`` (``dict`` or ``list``), anything else is an error too."""
    with guarded(path, "read", hint):
        value = json.loads(Path(path).read_bytes().decode("utf-8"))
    if expect is not None and not isinstance(value, expect):
        raise OmniJaxError(f"cannot read {path}: it holds a JSON {type(value).__name__}, not a "
                           f"{expect.__name__}; {hint}")
    return value


def digest(path: PathLike) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with guarded(path, "read"):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- directories


def ensure_dir(path: PathLike, what: str = "directory") -> Path:
    """Creates ``path`` (and its parents) as a directory; an error naming the first part of the
    path that is a file, or the reason it cannot be created."""
    path = Path(path)
    for p in [path, *path.parents]:
        if p.is_dir():
            break
        if p.exists() or p.is_symlink():
            raise OmniJaxError(f"{what} {path}: {p} is a file, not a directory; move it aside or choose "
                               "another path")
    with guarded(path, "create the directory", "choose another path or fix its permissions"):
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_file_slot(path: PathLike) -> None:
    """An error if ``path`` is in the way of writing a file there (a directory, say)."""
    path = Path(path)
    if path.is_dir():
        raise OmniJaxError(f"cannot write {path}: it is a directory, not a file; move it aside and run again")


def check_writable(directory: PathLike, what: str = "output directory", create: bool = True) -> Path:
    """Checks that files can be written in ``directory``, so a long job finds out before it starts
    working: creates it (``create``) and writes and removes a probe file there. With
    ``create=False`` a directory that does not exist yet is not created: its nearest existing
    parent must be a directory that can be written."""
    directory = Path(directory)
    if not create and not directory.exists():
        for p in directory.parents:
            if p.exists():
                if not p.is_dir():
                    raise OmniJaxError(f"{what} {directory}: {p} is a file, not a directory; move it aside or "
                                       "choose another path")
                if not os.access(p, os.W_OK | os.X_OK):
                    raise OmniJaxError(f"{what} {directory} cannot be created in {p}: permission denied; fix "
                                       "its permissions or choose another directory")
                return directory
        return directory
    directory = ensure_dir(directory, what)
    probe = directory / f".omni-jax-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    with guarded(directory, "write into", "fix its permissions or choose another directory"):
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, b"omni-jax")
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return directory


# ---------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write to (``open(tmp, "wb")``, a zip writer, ...);
    when the block ends it is flushed to disk and renamed onto ``path``. A failure leaves
    ``path`` as it was and no temporary file behind; file errors become an :class:`OmniJaxError`."""
    path = Path(path)
    ensure_dir(path.parent)
    check_file_slot(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with guarded(path, "write"):
            # the mode an ordinary new file gets (0o666 less the umask), not mkstemp's 0o600
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        with guarded(path, "write"):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: PathLike, data: Union[str, bytes]) -> Path:
    """Writes ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        with guarded(path, "write"):
            with open(tmp, "wb") as f:
                f.write(raw)
    return Path(path)


def write_json(path: PathLike, value: Any, indent: Optional[int] = 1, **kwargs) -> Path:
    """Writes ``value`` as JSON to ``path`` atomically."""
    return write_atomic(path, json.dumps(value, indent=indent, **kwargs) + "\n")


def append_text(path: PathLike, text: str) -> None:
    """Appends ``text`` to ``path`` (created if needed); for logs that grow line by line."""
    path = Path(path)
    ensure_dir(path.parent)
    check_file_slot(path)
    with guarded(path, "append to"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()


def move_aside(path: PathLike, suffix: str = "damaged") -> Path:
    """Renames ``path`` to ``<path>.<suffix>`` (``.<suffix>.2``, ... if taken); returns the new name."""
    path = Path(path)
    target = path.with_name(f"{path.name}.{suffix}")
    n = 2
    while target.exists() or target.is_symlink():
        target = path.with_name(f"{path.name}.{suffix}.{n}")
        n += 1
    with guarded(path, "move aside", "move it aside by hand and run again"):
        os.replace(path, target)
    return target


# ---------------------------------------------------------------------------- one run at a time

LOCK = ".omni-jax.lock"


@contextlib.contextmanager
def run_lock(directory: PathLike, *, shared: bool = False, what: str = "work directory") -> Iterator[Path]:
    """Holds an advisory lock on ``directory/.omni-jax.lock`` for the block (``fcntl.flock``, so it
    dies with the process: a SIGKILLed run leaves no stale lock). ``shared=False`` excludes every
    other holder; ``shared=True`` admits other shared holders and excludes an exclusive one. When
    the lock is held elsewhere, an :class:`OmniJaxError` names the folder and the process that
    last took it, at once. Creates ``directory`` if needed (and removes it again if the block
    wrote nothing else there); the lock file stays otherwise (deleting it would let two runs hold
    two different files). Where ``fcntl`` does not exist (Windows), no lock."""
    try:
        import fcntl
    except ImportError:   # pragma: no cover - not POSIX
        yield Path(directory) / LOCK
        return
    created = not Path(directory).exists()
    path = ensure_dir(directory, what) / LOCK
    with guarded(path, "open the lock file", "move it aside (a run's lock is an empty or one-line file) and run again"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            pid = f" (process {holder[0]})" if holder and holder[0].isdigit() else ""
            raise OmniJaxError(f"{what} {directory} is in use by another omni-jax run{pid}; wait for it to end or "
                               "choose another work directory") from None
        except OSError as e:
            raise error(path, "lock", e, "choose another work directory") from None
        with contextlib.suppress(OSError):   # who holds it, for the message of the next one (informative only)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)
        if created:   # a run that stopped before writing anything leaves no folder behind
            with contextlib.suppress(OSError):
                if [p.name for p in Path(directory).iterdir()] == [LOCK]:
                    path.unlink()
                    Path(directory).rmdir()
