"""The tracking store: is it there, and how to name it without leaking a password.

MLflow's HTTP client retries a dead server for minutes (7 retries, 120 s timeouts). xraytrack
asks once, with a short timeout, before any work starts, and caps MLflow's retries for the rest
of the command unless the user has set them: a store that goes away mid-run then ends the run
within about a minute with a clear message instead of hanging.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from xraytrack.errors import XrayTrackError

CHECK_TIMEOUT_S = 5
RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def redact(uri: str) -> str:
    """``http://user:secret@host`` -> ``http://user:***@host``; other URIs unchanged."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` inside a message, redacted."""
    return re.sub(r"(\w+://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


LOST_WORDS = ("Max retries", "Connection", "connect", "timed out")


def is_lost(exc: BaseException) -> bool:
    """Whether an error from MLflow or requests means the store stopped answering."""
    return any(w in str(exc) for w in LOST_WORDS)


def reason(exc: BaseException) -> str:
    """The cause in a few words (``Connection refused``), not urllib3's nested repr; the first
    line of the message, redacted, when there is no such cause."""
    text = str(getattr(exc, "message", exc))
    found = re.search(r"\[Errno -?\d+\] ([^\"')]+)|(Read timed out)", text)
    if found:
        return (found.group(1) or found.group(2)).strip()
    return redact_text(text.strip().splitlines()[0]) if text.strip() else type(exc).__name__


def limit_retries() -> None:
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)


def check_reachable(uri: str | None = None) -> None:
    """One short request to an HTTP tracking server; any HTTP answer (even 401) will do."""
    import mlflow

    uri = uri or mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    bare = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    try:
        with urllib.request.urlopen(bare.rstrip("/") + "/health", timeout=CHECK_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise XrayTrackError(f"cannot reach the tracking server at {redact(uri)} ({reason}); is it "
                             "running? set MLFLOW_TRACKING_URI") from None
