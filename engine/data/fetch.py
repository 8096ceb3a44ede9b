"""`fetch`: download a dataset into the data folder, verified against known SHA-256 values.

Every file is written to a temporary file in its final folder and moved into place with
`os.replace` only once its checksum matches, so an interrupted or failed download never leaves
a partial or wrong file behind. Files already there with the right checksum are kept.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from descent.engine.data.folder import DatasetInfo, dataset_info
from descent.engine.errors import DescentError

Progress = Callable[[str, int, int], None]   # (file name, bytes done, bytes total or 0 if unknown)

_CHUNK = 1 << 16
_TIMEOUT_S = 30
_USER_AGENT = "descent/0.1 (+dataset fetch)"


def fetch(name: str, root: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Download dataset `name` into `root/name` and return that folder.

    `progress(file, done, total)` is called as bytes arrive, with the name of the file (or zip
    archive) being downloaded; `total` is 0 when the server does not say. Raises `DescentError` with one line when every source fails or a checksum does
    not match.
    """
    info = dataset_info(name)
    folder = Path(root) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DescentError(f"cannot create data folder {folder}: {e.strerror or e}") from None
    todo = [f for f, sha in info.files.items() if not _has_checksum(folder / f, sha)]
    if todo:
        if info.archive:
            _fetch_from_archive(name, info, folder, todo, progress)
        else:
            for file in todo:
                _fetch_file(name, info, folder, file, progress)
    return folder


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _has_checksum(path: Path, sha: str) -> bool:
    return path.is_file() and sha256_of(path) == sha


def _fetch_file(name: str, info: DatasetInfo, folder: Path, file: str, progress: Progress | None) -> None:
    """One file from the first mirror that serves it with the right checksum."""
    expected = info.files[file]
    failures = []
    for base in info.urls:
        url = base + file
        try:
            tmp, sha = _download(url, folder, file, progress)
        except _NETWORK_ERRORS as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        if sha == expected:
            _install(tmp, folder / file)
            return
        _remove(tmp)
        failures.append(f"{url}: {_mismatch(sha, expected)}")
    raise DescentError(f"could not fetch {name}/{file}: {'; '.join(failures)}")


def _fetch_from_archive(name: str, info: DatasetInfo, folder: Path, todo: list[str],
                        progress: Progress | None) -> None:
    """The files in `todo` from the first zip that holds all of them with the right checksums."""
    failures = []
    for url in info.urls:
        try:
            tmp, _ = _download(url, folder, url.rsplit("/", 1)[-1], progress)
        except _NETWORK_ERRORS as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        try:
            problem = _extract_verified(tmp, folder, {f: info.files[f] for f in todo})
        finally:
            _remove(tmp)
        if problem is None:
            return
        failures.append(f"{url}: {problem}")
    raise DescentError(f"could not fetch {name}: {'; '.join(failures)}")


def _extract_verified(zip_path: Path, folder: Path, wanted: dict[str, str]) -> str | None:
    """Extract `wanted` (name -> SHA-256) from the zip; None on success, else what went wrong.
    Nothing is installed unless every wanted file is present and matches."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = {Path(m.filename).name: m for m in z.infolist()
                       if not m.is_dir() and not m.filename.startswith("__MACOSX/")}
            absent = [f for f in wanted if f not in members]
            if absent:
                return f"archive lacks {', '.join(absent)}"
            contents = {f: z.read(members[f]) for f in wanted}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"not a readable zip archive ({_reason(e)})"
    for f, data in contents.items():
        got = hashlib.sha256(data).hexdigest()
        if got != wanted[f]:
            return f"{f}: {_mismatch(got, wanted[f])}"
    for f, data in contents.items():
        tmp = _temp_in(folder, f)
        try:
            tmp.write_bytes(data)
        except BaseException:
            _remove(tmp)
            raise
        _install(tmp, folder / f)
    return None


def _download(url: str, folder: Path, file: str, progress: Progress | None) -> tuple[Path, str]:
    """Stream `url` to a temporary file in `folder`; returns (temp path, SHA-256 hex).
    The temporary file is removed if anything goes wrong."""
    tmp = _temp_in(folder, file)
    h = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            if progress:
                progress(file, 0, total)
            while block := response.read(_CHUNK):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(file, done, total)
            if total and done != total:
                raise http.client.IncompleteRead(b"", total - done)
    except BaseException:
        _remove(tmp)
        raise
    return tmp, h.hexdigest()


def _temp_in(folder: Path, file: str) -> Path:
    fd, path = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=".part")
    os.close(fd)
    return Path(path)


def _install(tmp: Path, final: Path) -> None:
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)


def _reason(e: BaseException) -> str:
    """A short one-line reason for a failed download."""
    reason = getattr(e, "reason", None)
    if isinstance(e, http.client.IncompleteRead):
        text = "connection closed before the download finished"
    elif getattr(e, "code", None) is not None:
        text = f"HTTP {e.code} {reason or ''}".strip()
    elif reason is not None:
        text = str(reason)
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def _mismatch(got: str, expected: str) -> str:
    return f"checksum mismatch (SHA-256 {got[:12]}..., expected {expected[:12]}...)"
