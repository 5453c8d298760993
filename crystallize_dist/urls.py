"""Redis URLs: checked before anything is dialled, and printed without their passwords.

A URL is refused in one line when its scheme is not one we speak, when its port or host
cannot be read, when its userinfo is ambiguous (an unencoded ``@``, ``/``, ``?`` or ``#`` in
the password: one parser would send part of the password to DNS as a host name, another
would cut it short), or when its query string holds a parameter that the broker (kombu) and
the store (redis-py) do not both take. A password given in the query string
(``?password=...``) is moved into the userinfo, where both of them read it.

``redact`` hides every password: the userinfo's, and the value of every query parameter
that is not known to be harmless, however it is percent-encoded.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

from crystallize_dist.errors import InvalidOptionError

#: query parameters whose values are shown when a URL is printed
SHOWN_PARAMETERS = frozenset(
    {
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "username",
    }
)
#: query parameters a broker or store URL may carry (kombu and redis-py both take them;
#: ``username`` and ``password`` are moved into the userinfo)
KNOWN_PARAMETERS = SHOWN_PARAMETERS | {"password", "ssl_password"}
MASK = "***"


def _split(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    return (scheme, rest) if sep else ("", url)


def _query(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _redact_query(query: str) -> str:
    pairs = [(name, value if name in SHOWN_PARAMETERS else MASK) for name, value in _query(query)]
    return "&".join(f"{quote(n, safe='_')}={quote(v, safe='/*._-')}" for n, v in pairs)


def redact(url: str) -> str:
    """``url`` with every password replaced by ``***`` (safe to print and to store).

    Everything between ``scheme://`` and the *last* ``@`` is credentials, so a password
    holding ``/``, ``:``, ``#`` or ``@`` is hidden whole even when the URL does not parse; a
    lone userinfo without ``:`` is hidden too (it is a password more often than a user). In
    the query string only the values of SHOWN_PARAMETERS are shown."""
    scheme, rest = _split(url)
    head = f"{scheme}://" if scheme else ""
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        head += f"{user}:{MASK}@" if colon else f"{MASK}@"
    rest, hash_sign, _ = rest.partition("#")
    where, question, query = rest.partition("?")
    shown = where + (("?" + _redact_query(query)) if question else "")
    return head + shown + ("#" + MASK if hash_sign else "")


def _ambiguous(rest: str) -> bool:
    """Whether the part after ``scheme://`` has an ``@`` where no parser agrees on it: two in
    the authority, or one after the authority has ended (at a ``/``, ``?`` or ``#``)."""
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:end].count("@") > 1 or "@" in rest[end:]


def _move_credentials(url: str, what: str) -> str:
    """``url`` with a ``password`` / ``username`` of its query string moved into its
    userinfo (percent-encoded); a password given in both places is refused."""
    scheme, rest = _split(url)
    rest, hash_sign, fragment = rest.partition("#")
    where, _, query = rest.partition("?")
    pairs = _query(query)
    creds = {n: v for n, v in pairs if n in ("username", "password")}
    if not creds:
        return url
    authority, slash, path = where.partition("/")
    userinfo, _, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if "password" in creds and password:
        raise InvalidOptionError(
            f"{what} '{redact(url)}' gives a password twice (in its userinfo and its query "
            "string); keep one"
        )
    if "username" in creds and user:
        raise InvalidOptionError(
            f"{what} '{redact(url)}' gives a user name twice (in its userinfo and its query "
            "string); keep one"
        )
    user = quote(creds["username"], safe="") if "username" in creds else user
    if "password" in creds:
        password = quote(creds["password"], safe="")
    userinfo = user + (f":{password}" if password or colon else "")
    rest_query = "&".join(
        f"{quote(n, safe='_')}={quote(v, safe='/._-')}"
        for n, v in pairs
        if n not in ("username", "password")
    )
    out = f"{scheme}://{userinfo}@{host}{slash}{path}"
    return out + (f"?{rest_query}" if rest_query else "") + (f"#{fragment}" if hash_sign else "")


def check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    """``url``, checked (see the module docstring) and with any query-string credentials
    moved into its userinfo; anything wrong is a one-line InvalidOptionError that shows the
    URL redacted."""
    scheme, rest = _split(url)
    if scheme not in schemes:
        raise InvalidOptionError(
            f"{what} '{redact(url)}' has scheme '{scheme or '(none)'}'; "
            f"use {' or '.join(s + '://' for s in schemes)}"
        )
    if scheme == "sqlite":
        return url
    if _ambiguous(rest):
        raise InvalidOptionError(
            f"{what} '{redact(url)}' is ambiguous: its password holds an unencoded '@', '/', "
            "'?' or '#'; percent-encode them (@ as %40, / as %2F, ? as %3F, # as %23)"
        )
    query = rest.partition("#")[0].partition("?")[2]
    names = {n for n, _ in _query(query)}
    unknown = sorted(names - KNOWN_PARAMETERS)
    if unknown:
        raise InvalidOptionError(
            f"{what} '{redact(url)}' has an unknown query parameter '{quote(unknown[0])}'; "
            f"known: {', '.join(sorted(KNOWN_PARAMETERS))}"
        )
    tls = sorted(n for n in names if n.startswith("ssl_"))
    if tls and scheme != "rediss":
        raise InvalidOptionError(
            f"{what} '{redact(url)}' has the TLS parameter '{tls[0]}', which needs rediss://"
        )
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a malformed port or host
    except ValueError as exc:
        what_is_wrong = "port" if "port" in str(exc).lower() else "host or port"
        raise InvalidOptionError(
            f"{what} '{redact(url)}' is malformed: its {what_is_wrong} cannot be read"
        ) from None
    return _move_credentials(url, what)
