"""The host allow-list: loopback by name by default, plus names, domains, addresses, networks."""

from __future__ import annotations

import pytest

from loadkit.core.hosts import AllowList, AllowListError, HostNotAllowedError, host_of_url

DEFAULT = AllowList.of()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1", True), ("localhost", True), ("LOCALHOST.", True), ("::1", True),
     ("[::1]", True), ("::ffff:127.0.0.1", True),
     # loopback, but not on the list: the tests' "host off the list"
     ("127.0.0.2", False), ("127.1", False), ("2130706433", False), ("0x7f000001", False),
     ("0.0.0.0", False), ("", False), ("localhost.example.com", False), ("10.0.0.1", False)],
)  # fmt: skip
def test_default_list_is_the_three_loopback_names(host: str, allowed: bool) -> None:
    assert DEFAULT.allows(host) is allowed


def test_named_hosts_domains_addresses_and_networks() -> None:
    allow = AllowList.of(["staging.example.com, *.perf.example.org", "10.20.0.0/16", "[fd00::5]"])
    assert allow.allows("Staging.Example.com")
    assert not allow.allows("prod.example.com")
    assert allow.allows("api.perf.example.org") and allow.allows("a.b.perf.example.org")
    assert not allow.allows("perf.example.org.evil.test") and not allow.allows("xperf.example.org")
    assert allow.allows("10.20.3.4") and not allow.allows("10.21.0.1")
    assert allow.allows("fd00::5") and not allow.allows("fd00::6")
    assert allow.allows("127.0.0.1")  # the defaults stay


@pytest.mark.parametrize(
    "entry", ["http://staging.example.com", "host:8080", "a/b", "*.", "bad host", "10.0.0.0/99"]
)
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(AllowListError, match="allow-list entry"):
        AllowList.of([entry])


def test_check_url_names_the_host_and_how_to_allow_it_without_the_password() -> None:
    assert DEFAULT.check_url("http://localhost:3000/api") == "localhost"
    with pytest.raises(HostNotAllowedError) as caught:
        DEFAULT.check_url("http://user:hunter2-password@127.0.0.2:8080/x")
    message = str(caught.value)
    assert "'127.0.0.2' is not on the allow-list" in message
    assert "--allow-host 127.0.0.2" in message and "LOADKIT_ALLOWED_HOSTS=127.0.0.2" in message
    assert "hunter2" not in message and "\n" not in message


def test_host_of_url() -> None:
    assert host_of_url("http://[::1]:80/") == "::1"
    assert host_of_url("https://u:p@Example.COM") == "example.com"
    assert host_of_url("not a url") is None
    assert host_of_url("http://[::1") is None
