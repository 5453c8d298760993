"""Network namespaces as stand-in machines for the multi-host test (Linux, root, ``ip``).

``Topology`` creates one namespace per "machine", all on one link-local /24
(169.254.<x>.0/24, x chosen free): a bridge lives *inside the first namespace* (the Redis
host), every other namespace and the root namespace join it through a veth pair. Keeping the
bridge out of the root namespace keeps the host's firewall (br_netfilter, a FORWARD policy of
DROP on Docker hosts) out of the path. Everything is named ``cdt<pid>...`` and removed by name
in ``cleanup`` (deleting a namespace deletes the veth ends and the bridge inside it).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from typing import NoReturn

import pytest


def require_netns() -> None:
    """Skip unless Linux + root + ``ip`` + ``redis-server``; fail instead when CI=true."""
    missing = []
    if not sys.platform.startswith("linux"):
        missing.append("Linux")
    elif os.geteuid() != 0:
        missing.append("root (network namespaces need CAP_NET_ADMIN)")
    for tool in ("ip", "redis-server"):
        if shutil.which(tool) is None:
            missing.append(f"the '{tool}' command")
    if missing:
        cannot("multi-host test needs " + ", ".join(missing))


def cannot(message: str) -> NoReturn:
    """Skip with ``message``; fail instead when CI=true (CI must run the multi-host test)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + ", and CI=true: this test must run in CI")
    pytest.skip(message)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def free_subnet() -> int:
    """An x with no 169.254.x.* address or route on this host (169.254.169.* excluded)."""
    used = ip("-o", "-4", "addr").stdout + ip("-4", "route").stdout
    choices = [x for x in range(100, 250) if x != 169 and f"169.254.{x}." not in used]
    if not choices:
        raise RuntimeError("no free 169.254.x.0/24 subnet for the multi-host test")
    return random.choice(choices)


class Topology:
    """Namespaces ``cdt-<pid>-<name>``; ``address(name)`` is each one's IPv4 address."""

    def __init__(self, names: list[str]) -> None:
        self.tag = f"cdt{os.getpid()}"
        self.names = names
        self.subnet = free_subnet()
        self.hub = names[0]
        self.created: list[str] = []  # namespaces, for cleanup
        self.links: list[str] = []  # veth ends made in the root namespace, for cleanup
        self.devices: dict[str | None, str] = {}  # each namespace's end of its link

    def ns(self, name: str) -> str:
        return f"cdt-{os.getpid()}-{name}"

    def address(self, name: str | None) -> str:
        """``None`` is the root namespace (.1); then .2, .3, ... in ``names`` order."""
        index = 1 if name is None else self.names.index(name) + 2
        return f"169.254.{self.subnet}.{index}"

    def _in(self, name: str | None, *args: str) -> None:
        """``ip ARGS`` inside namespace ``name`` (None: the root namespace)."""
        if name is None:
            ip(*args)
        else:
            ip("netns", "exec", self.ns(name), "ip", *args)

    def _join(self, name: str | None, short: str) -> None:
        """A veth pair: one end on the hub's bridge, the other in ``name`` (None: root)."""
        inner, outer = f"{self.tag}{short}h", f"{self.tag}{short}"
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        self.links += [outer, inner]  # until moved, both ends live in the root namespace
        ip("link", "set", inner, "netns", self.ns(self.hub))
        self._in(self.hub, "link", "set", inner, "master", "br0")
        self._in(self.hub, "link", "set", inner, "up")
        if name is not None:
            ip("link", "set", outer, "netns", self.ns(name))
        self._in(name, "addr", "add", f"{self.address(name)}/24", "dev", outer)
        self._in(name, "link", "set", outer, "up")
        self.devices[name] = outer

    def set_link(self, name: str, up: bool) -> None:
        """Take the link of namespace ``name`` down (its "machine" drops off the network) or
        bring it up again (its address comes back with it)."""
        self._in(name, "link", "set", self.devices[name], "up" if up else "down")

    def create(self) -> Topology:
        for name in self.names:
            ip("netns", "add", self.ns(name))
            self.created.append(self.ns(name))
            self._in(name, "link", "set", "lo", "up")
        self._in(self.hub, "link", "add", "br0", "type", "bridge")
        self._in(self.hub, "addr", "add", f"{self.address(self.hub)}/24", "dev", "br0")
        self._in(self.hub, "link", "set", "br0", "up")
        self._join(None, "r")
        for i, name in enumerate(self.names[1:], start=1):
            self._join(name, f"n{i}")
        return self

    def exec_args(self, name: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name), *command]

    def cleanup(self) -> list[str]:
        """Remove every namespace and root link made here (by name); returns what failed."""
        failed = []
        for link in self.links:
            present = ip("link", "show", link, check=False).returncode == 0
            if present and ip("link", "del", link, check=False).returncode != 0:
                failed.append(link)
        for ns in reversed(self.created):
            if ip("netns", "del", ns, check=False).returncode != 0:
                failed.append(ns)
        return failed
