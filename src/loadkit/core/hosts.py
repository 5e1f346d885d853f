"""Which hosts the kit may send load to: loopback, plus the hosts the user names.

A load generator aimed at the wrong host is an outage, or an attack, with the API key attached.
So every place that can aim the load (``loadkit run``/``run-all``/``ui``/``preflight``, plain
``locust -f ... --host``, the web UI's host field, a worker told a host by its master) asks
:meth:`AllowList.check` first and refuses a host off the list before anything is sent.

The list matches host *names as written*, never what they resolve to: ``localhost`` is allowed
because it is on the list, and ``127.0.0.2`` is not, although it is loopback too (tests use it as
"a host off the list" without ever leaving the machine). Entries are host names
(case-insensitive, a trailing dot ignored), ``*.example.com`` for every name under a domain,
IP addresses (``::1``, ``[::1]``), and networks (``10.20.0.0/16``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

#: Always allowed: the loopback names and addresses, and nothing else of 127.0.0.0/8.
DEFAULT_ALLOWED_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
ALLOWED_HOSTS_ENV: Final = "LOADKIT_ALLOWED_HOSTS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostNotAllowedError(ValueError):
    """A target host off the allow-list; the message is one line saying how to allow it."""


class AllowListError(ValueError):
    """An allow-list entry that is not a host, address, network or ``*.domain``."""


@dataclass(frozen=True)
class AllowList:
    """Host names, ``*.domain`` suffixes, addresses and networks load may go to."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, entries: Iterable[str] = ()) -> AllowList:
        """The defaults plus ``entries`` (each may itself be a comma-separated list)."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for entry in split_entries([*DEFAULT_ALLOWED_HOSTS, *entries]):
            kind, value = _parse_entry(entry)
            if kind == "network":
                networks.append(value)  # type: ignore[arg-type]
            elif kind == "suffix":
                suffixes.append(value)  # type: ignore[arg-type]
            else:
                names.add(value)  # type: ignore[arg-type]
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def allows(self, host: str) -> bool:
        """Whether load may go to ``host`` (a bare host name or address, no port)."""
        address = _address(host)
        if address is not None:
            return any(address in network for network in self.networks)
        name = _normal_name(host)
        if not name:
            return False
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)

    def check_url(self, url: str, *, what: str = "host") -> str:
        """``url``'s host if it is allowed; else :class:`HostNotAllowedError` in one line."""
        host = host_of_url(url)
        if host is None:
            raise HostNotAllowedError(f"{what} {display_host(url)!r} has no host name")
        if not self.allows(host):
            raise HostNotAllowedError(
                f"{what} {host!r} is not on the allow-list "
                f"({', '.join(self.describe())}): add it with --allow-host {host} "
                f"or {ALLOWED_HOSTS_ENV}={host}"
            )
        return host

    def describe(self) -> list[str]:
        """The entries, for messages: names, ``*.domain``, addresses and networks."""
        nets = [str(n.network_address) if n.num_addresses == 1 else str(n) for n in self.networks]
        return sorted(self.names) + [f"*{s}" for s in self.suffixes] + nets


def split_entries(entries: Iterable[str]) -> list[str]:
    """Entries from repeated options and/or comma-separated lists; blanks dropped."""
    return [part.strip() for entry in entries for part in str(entry).split(",") if part.strip()]


def host_of_url(url: str) -> str | None:
    """The host of ``url`` without brackets or port (``None`` if it has none or is malformed)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host or None


def display_host(url: str) -> str:
    """``url`` without its user part, for messages (a password may be in it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


def _parse_entry(entry: str) -> tuple[str, object]:
    text = entry.strip()
    if text.startswith("*."):
        domain = _normal_name(text[2:])
        if not domain or not _is_host_name(domain):
            raise AllowListError(f"allow-list entry {entry!r}: expected *.DOMAIN")
        return "suffix", "." + domain
    if "/" in text and "://" not in text:
        try:
            return "network", ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise AllowListError(
                f"allow-list entry {entry!r}: not a network (e.g. 10.0.0.0/8)"
            ) from None
    address = _address(text)
    if address is not None:
        return "network", ipaddress.ip_network(address)
    name = _normal_name(text)
    if not _is_host_name(name):
        raise AllowListError(
            f"allow-list entry {entry!r}: expected a host name, an address or a network "
            "(no scheme, port or path)"
        )
    return "name", name


def _address(host: str) -> IPAddress | None:
    """``host`` as an IP address (IPv4-mapped IPv6 as IPv4), or None for a name."""
    try:
        address = ipaddress.ip_address(host.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal_name(host: str) -> str:
    return host.strip().lower().removesuffix(".")


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return bool(name) and len(name) <= 253 and all(_is_label(label) for label in labels)


def _is_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
    )
