"""Redis URLs: refused in one line before anything is dialled when they are ambiguous or carry
unknown parameters; passwords hidden in every form when a URL is shown."""

from __future__ import annotations

import pytest

from crystallize_dist.config import Settings
from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.urls import check_url, redact

SCHEMES = ("redis", "rediss")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
        ("redis://pw@h:1/0", "redis://***@h:1/0"),
        ("redis://:p@ss#w/rd@h:1/0", "redis://:***@h:1/0"),
        ("redis://h:1/0?password=pw", "redis://h:1/0?password=***"),
        (
            "redis://h:1/0?pass%77ord=pw&ssl_cert_reqs=none",
            "redis://h:1/0?password=***&ssl_cert_reqs=none",
        ),
        (
            "rediss://h:1/0?ssl_password=pw&ssl_ca_certs=/ca.pem",
            "rediss://h:1/0?ssl_password=***&ssl_ca_certs=/ca.pem",
        ),
        ("redis://h:1/0#pw", "redis://h:1/0#***"),
        ("h:1?password=pw", "h:1?password=***"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "pw" not in redact(url).replace("password", "")


@pytest.mark.parametrize("password", ["p@ss", "p#ss", "p/ss", "p?ss"])
def test_an_ambiguous_userinfo_is_refused(password: str) -> None:
    with pytest.raises(InvalidOptionError, match=r"ambiguous.*percent-encode") as err:
        check_url(f"redis://:{password}@h:1/0", SCHEMES, "broker URL")
    assert "ss" not in str(err.value).split("'")[1]  # the URL is shown redacted
    quoted = password.replace("@", "%40").replace("#", "%23").replace("/", "%2F")
    assert check_url(f"redis://:{quoted.replace('?', '%3F')}@h:1/0", SCHEMES, "b")


def test_query_credentials_move_into_the_userinfo_and_unknown_ones_are_refused() -> None:
    assert check_url("redis://h:1/0?password=a%40b", SCHEMES, "b") == "redis://:a%40b@h:1/0"
    assert check_url("redis://h:1/0?username=al&password=x", SCHEMES, "b") == ("redis://al:x@h:1/0")
    assert Settings(broker_url="redis://h:1/0?password=x").broker_url == "redis://:x@h:1/0"
    with pytest.raises(InvalidOptionError, match="password twice"):
        check_url("redis://:a@h:1/0?password=b", SCHEMES, "b")
    with pytest.raises(InvalidOptionError, match="unknown query parameter 'db'"):
        check_url("redis://h:1/0?db=2", SCHEMES, "b")
    with pytest.raises(InvalidOptionError, match="needs rediss://"):
        check_url("redis://h:1/0?ssl_cert_reqs=none", SCHEMES, "b")
    tls = "rediss://:pw@h:1/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"
    assert check_url(tls, SCHEMES, "b") == tls
