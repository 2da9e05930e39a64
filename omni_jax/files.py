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
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

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
    errno.ENAMETOOLONG: "the name is too long for the file system",
    errno.ELOOP: "its symbolic links form a loop",
}

# What tensorstore (under orbax) says instead of raising an OSError: its messages carry the errno
# (``[os_error_code='28']``) or the C library's words for it.
_STRERRORS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
              errno.EROFS: "Read-only file system", errno.ENAMETOOLONG: "File name too long",
              errno.EACCES: "Permission denied", errno.EIO: "Input/output error"}


def os_error_in(e: BaseException) -> Optional[OSError]:
    """The operating-system error behind ``e``: ``e`` itself, one in its chain of causes, or one
    that a library (tensorstore under orbax) only names in its message; ``None`` if there is none."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        text = str(e)
        code = re.search(r"os_error_code='?(\d+)", text)
        if code and int(code.group(1)) in _ERRNO_WORDS:
            n = int(code.group(1))
            return OSError(n, os.strerror(n))
        for n, words in _STRERRORS.items():
            if words in text:
                return OSError(n, words)
        e = e.__cause__ or e.__context__
    return None


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
    """Advice that fits the cause (a full disk is never "move it aside")."""
    n = e.errno if isinstance(e, OSError) else None
    if n == errno.ENOSPC:
        return "free some space (or use another directory) and run again; what was written before is intact"
    if n == errno.EDQUOT:
        return "free some of your quota (or use another directory) and run again; what was written before is intact"
    if n == errno.EROFS:
        return "use a directory on a writable file system"
    if n in (errno.EACCES, errno.EPERM):
        return "fix its permissions or use another directory"
    if n == errno.ENAMETOOLONG:
        return "choose a shorter path"
    if n == errno.EIO:
        return "check the device (dmesg), or use another directory"
    return default


def error(path: PathLike, action: str, e: BaseException, hint: str) -> OmniJaxError:
    """The one-line error for ``action`` (``"read"``, ``"write"``, ...) on ``path`` failing with ``e``
    (or with the operating-system error behind it, :func:`os_error_in`)."""
    e = os_error_in(e) or e
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
        return check_place(directory, what)   # its nearest existing parent can take it
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
                left = {p.name for p in Path(directory).iterdir()}
                if left <= {LOCK, MARKER}:
                    for name in left:
                        (Path(directory) / name).unlink()
                    Path(directory).rmdir()


# ---------------------------------------------------------------------------- places and ownership

# File systems that are views of the kernel's state, not storage: nothing of a run belongs there.
PSEUDO_FILE_SYSTEMS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs",
                                 "securityfs", "configfs", "bpf", "pstore", "efivarfs", "fusectl", "mqueue"})
# The longest path a run writes below its work directory (a method's orbax temporary checkpoint
# folders and their files), so a work directory whose own name fits but whose files would not is
# refused before any work.
DEEPEST_BELOW = 160


def _mount_of(path: Path) -> Optional[Tuple[str, str]]:
    """``(mount point, file system type)`` of the mount holding ``path`` (an existing, resolved
    path), from ``/proc/self/mountinfo``; ``None`` where that cannot be read (not Linux)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    best = None
    text = str(path)
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")     # \040 for a space
        fstype = line.split(" - ", 1)[1].split()[0]
        if text == point or text.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best[0]):
                best = (point, fstype)
    return best


def check_place(path: PathLike, what: str = "work directory") -> Path:
    """Refuses, before any work, a place a run cannot use, with the real cause in one line: an
    empty name, a name or path too long for the file system (counting what a run writes below
    it), a dangling symbolic link or a loop of them anywhere on the path, a file where a folder
    must be, a place under ``/proc`` or ``/sys`` (not storage), a read-only file system, a
    folder that cannot be written. Creates nothing; returns the path."""
    if not str(path):
        raise OmniJaxError(f"an empty {what} name; name a folder")
    p = Path(path)
    absolute = Path(os.path.abspath(p))
    existing = next((q for q in [absolute, *absolute.parents] if os.path.lexists(q)), Path("/"))
    try:
        name_max = os.pathconf(existing if existing.is_dir() else existing.parent, "PC_NAME_MAX")
        path_max = os.pathconf(existing if existing.is_dir() else existing.parent, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        name_max, path_max = 255, 4096
    for part in absolute.parts:
        if len(os.fsencode(part)) > name_max:
            raise OmniJaxError(f"{what} {p}: the name {part[:24]}... has {len(os.fsencode(part))} bytes, more than "
                               f"the {name_max} the file system allows; choose a shorter path")
    if len(os.fsencode(str(absolute))) + DEEPEST_BELOW > path_max:
        raise OmniJaxError(f"{what} {p}: the path has {len(os.fsencode(str(absolute)))} bytes; with the files a "
                           f"run writes below it, more than the {path_max} the file system allows; choose a "
                           "shorter path")
    for q in reversed([absolute, *absolute.parents]):     # from the root down: the first part that is wrong
        if not os.path.lexists(q):
            break
        try:
            os.stat(q)
        except OSError as e:
            if e.errno == errno.ENOENT and q.is_symlink():
                raise OmniJaxError(f"{what} {p}: {q} is a symbolic link to {os.readlink(q)}, which does not "
                                   "exist; create its target or choose another path") from None
            raise error(q, "use", e, "choose another path") from None
        if q != absolute and not q.is_dir():
            raise OmniJaxError(f"{what} {p}: {q} is a file, not a directory; move it aside or choose another path")
    if os.path.lexists(absolute) and not absolute.is_dir():
        raise OmniJaxError(f"{what} {p} is a file, not a directory; move it aside or choose another path")
    real = Path(os.path.realpath(existing))
    mount = _mount_of(real)
    if mount is not None and mount[1] in PSEUDO_FILE_SYSTEMS:
        raise OmniJaxError(f"{what} {p} is under {mount[0]}, the kernel's {mount[1]} view of the system, not "
                           "storage; choose a folder on a disk")
    if mount is None and real.parts[1:2] in (("proc",), ("sys",)):
        raise OmniJaxError(f"{what} {p} is under /{real.parts[1]}, not storage; choose a folder on a disk")
    try:
        read_only = bool(os.statvfs(real).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    if read_only:
        where = f" mounted at {mount[0]}" if mount else ""
        raise OmniJaxError(f"{what} {p} is on a read-only file system{where}; use a directory on a writable "
                           "file system")
    if not os.access(real, os.W_OK | os.X_OK):
        raise OmniJaxError(f"{what} {p}: {real} cannot be written (permission denied); fix its permissions or "
                           "choose another directory")
    return p


MARKER = ".omni-jax"   # a folder that holds this file was made by omni-jax (or adopted by it)


def owned(directory: PathLike) -> bool:
    """Whether ``directory`` holds omni-jax's marker file."""
    return (Path(directory) / MARKER).is_file()


def claim_directory(directory: PathLike, writes: Sequence[str] = (), what: str = "work directory",
                    adopt: Optional[Callable[[Path], bool]] = None) -> Path:
    """Checks, before any work, that a run may write into ``directory``: it does not exist yet, is
    empty, holds omni-jax's marker (:data:`MARKER`), or ``adopt(directory)`` says it is one that
    omni-jax wrote before it had the marker. Anything else is someone else's folder: an
    :class:`OmniJaxError` names the files of ``writes`` (the names the run writes there) that it
    would have touched, or else what the folder holds. Creates and writes nothing (see
    :func:`mark_directory`)."""
    d = Path(directory)
    if not d.is_dir() or owned(d):
        return d
    with guarded(d, "list", "fix its permissions or choose another directory"):
        entries = sorted(n for n in os.listdir(d) if n not in (LOCK,) and not n.startswith(".omni-jax-probe."))
    if not entries or (adopt is not None and adopt(d)):
        return d
    touched = [n for n in entries if n in set(writes)]
    shown = touched or entries
    names = ", ".join(shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")
    raise OmniJaxError(
        f"{what} {d} is not a folder omni-jax made (no {MARKER} file) and is not empty"
        + (f"; the run would overwrite {names}" if touched else f" (it holds {names})")
        + "; choose a new or empty folder")


def mark_directory(directory: PathLike) -> None:
    """Writes omni-jax's marker into ``directory`` (which exists) if it is not there yet."""
    d = Path(directory)
    if owned(d):
        return
    import time
    from importlib import metadata
    try:
        version = metadata.version("omni-jax")
    except metadata.PackageNotFoundError:   # run from a source tree
        version = "unknown"
    write_json(d / MARKER, {"made_by": "omni-jax", "version": version,
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "note": "omni-jax writes only into folders that hold this file (or new, empty ones)"})
