"""HTTP(S) download of one file to a path the caller owns, and checks of what arrived.

Only the standard library (urllib). Every failure is a one-line TinynetError: ``OfflineError`` when the
server cannot be reached at all, ``DownloadError`` for everything else (HTTP status, a connection that
drops mid-file, fewer bytes than announced, a digest that does not match). The caller deletes the
partial file; nothing here decides where files live.
"""
import hashlib
import http.client
import socket
import urllib.error
import urllib.request

from tinynet.errors import TinynetError

CHUNK = 1 << 16
TIMEOUT_SECONDS = 30


class DownloadError(TinynetError):
    """The download started or was refused but did not deliver the expected file."""


class OfflineError(DownloadError):
    """The server could not be reached (no network, DNS failure, connection refused, timeout)."""


def fetch(url, dest, progress=None):
    """Write the body of ``url`` to the file ``dest``; returns the number of bytes written.

    ``progress`` (tinynet.progress.Progress or None) is started with the announced size and updated
    per chunk. A body shorter than its Content-Length raises DownloadError; bytes past Content-Length
    are never read (http.client stops at the announced length).
    """
    request = urllib.request.Request(url, headers={"User-Agent": "tinynet"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: server answered HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(f"cannot reach {url} ({_describe(reason)})") from None
    written = 0
    with response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        if progress:
            progress.start(announced)
        try:
            with open(dest, "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress.update(len(chunk))
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as e:
            raise DownloadError(f"{url}: connection lost after {written} bytes ({_describe(e)})") from None
    if announced is not None and written != announced:
        raise DownloadError(f"{url}: connection lost after {written} of {announced} bytes")
    return written


def sha256_of(path):
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(path, sha256=None, sha256_prefix=None, what=None):
    """Raise DownloadError unless the file's sha256 equals ``sha256`` / starts with ``sha256_prefix``
    (each checked when given)."""
    if not (sha256 or sha256_prefix):
        return
    actual = sha256_of(path)
    expected = (sha256 or sha256_prefix).lower()
    if not actual.startswith(expected):
        raise DownloadError(f"{what or path}: sha256 {actual[:16]}... does not match the published "
                            f"{expected[:16]}{'...' if len(expected) > 16 else ''}: corrupted or tampered download")


def _describe(reason):
    """A few words for a socket-level failure, without Python exception names."""
    if isinstance(reason, socket.gaierror):
        return "host name not found: no network?"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return "incomplete read"
    text = getattr(reason, "strerror", None) or str(reason)
    return text or type(reason).__name__
