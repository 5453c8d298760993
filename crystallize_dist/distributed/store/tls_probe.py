"""Telling a TLS mix-up from other connection failures, for the one line a user sees.

``rediss://`` to a plain Redis port hangs in the TLS handshake (Redis waits for the end of a
command line that never comes) until the connect timeout; ``redis://`` to a TLS port is
reset by the server. Both look like a server that is down. ``tls_hint`` looks at the
endpoint the other way round - a plain ``PING`` for a ``rediss://`` URL, a TLS handshake
(no certificate check) for a ``redis://`` one - and says what to use instead.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from crystallize_dist.constants import TLS_PROBE_TIMEOUT
from crystallize_dist.urls import redact

#: what ssl / redis-py say when a TLS handshake or a certificate check fails
_TLS_WORDS = ("SSL", "TLS", "EOF occurred in violation of protocol", "WRONG_VERSION_NUMBER")


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or 6379


def answers_plain(host: str, port: int) -> bool:
    """True when ``host:port`` answers a plain-text ``PING`` as a Redis server does."""
    try:
        with socket.create_connection((host, port), timeout=TLS_PROBE_TIMEOUT) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-DENIED"))


def speaks_tls(host: str, port: int) -> bool:
    """True when ``host:port`` completes a TLS handshake (its certificate is not checked:
    only whether it speaks TLS at all)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=TLS_PROBE_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def tls_hint(url: str, failure: BaseException, *, timed_out: bool = False) -> str | None:
    """What to add to the line about ``failure`` (connecting to ``url`` failed; it
    ``timed_out``) when TLS is the problem, or None when it is not."""
    scheme, _, rest = url.partition("://")
    host, port = _endpoint(url)
    where = f"{host}:{port}"
    text = str(failure)
    if scheme == "rediss":
        plain = redact("redis://" + rest.partition("?")[0])
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return (
                f"TLS: the certificate of {where} does not verify; give its CA with "
                "?ssl_ca_certs=PATH (or ?ssl_cert_reqs=none to skip the check)"
            )
        if answers_plain(host, port):
            return (
                f"the TLS handshake failed: {where} is a plain Redis port (it answers "
                f"without TLS); use {plain}"
            )
        if timed_out or any(w in text for w in _TLS_WORDS):
            return (
                f"the TLS handshake with {where} did not complete; if it is a plain Redis "
                f"port, use {plain}"
            )
        return None
    if speaks_tls(host, port):
        return (
            f"{where} expects TLS (it completed a TLS handshake), which redis:// does not "
            f"speak; use {redact('rediss://' + rest)}"
        )
    return None
