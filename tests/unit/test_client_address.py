"""Who the client is behind the balancer: X-Forwarded-For only from a trusted proxy, right-most
untrusted hop, IPv6 per /64 for quotas, anything malformed falls back to the TCP peer."""

from __future__ import annotations

import pytest

from core_app.gate import MAX_FORWARDED_HOPS, client_address
from core_app.partner_keys import address_scope
from shared.platform.settings import Settings, SettingsError

BALANCER = ("127.0.0.1/32", "::1/128")
PROXIES = ("10.0.0.0/8", "127.0.0.1/32")


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_address("198.51.100.7", ["203.0.113.9"], ()) == "198.51.100.7"
    assert client_address("127.0.0.1", ["203.0.113.9"], ()) == "127.0.0.1"


def test_an_untrusted_peer_is_the_client_even_with_a_header() -> None:
    assert client_address("198.51.100.7", ["203.0.113.9"], BALANCER) == "198.51.100.7"
    assert client_address("::ffff:198.51.100.7", ["203.0.113.9"], BALANCER) == "198.51.100.7"


def test_a_trusted_peer_hands_over_the_right_most_untrusted_hop() -> None:
    assert client_address("127.0.0.1", ["203.0.113.9"], BALANCER) == "203.0.113.9"
    assert client_address("::1", ["203.0.113.9"], BALANCER) == "203.0.113.9"
    # What a client wrote itself is left of what our proxies appended: never believed.
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.9"], BALANCER) == "203.0.113.9"
    # A chain of trusted proxies: the first address from outside them.
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3, 10.9.9.9"], PROXIES) == "203.0.113.9"
    # Several header lines are one list, in order.
    assert client_address("127.0.0.1", ["6.6.6.6", "203.0.113.9, 10.1.2.3"], PROXIES) == "203.0.113.9"
    # Every hop trusted: the furthest one.
    assert client_address("127.0.0.1", ["10.1.2.3, 10.9.9.9"], PROXIES) == "10.1.2.3"


def test_a_trusted_peer_without_a_header_is_the_client() -> None:
    assert client_address("127.0.0.1", [], BALANCER) == "127.0.0.1"


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "203.0.113.9:4711", "for=203.0.113.9", "203.0.113.9,", "203.0.113.9, 10.1.2.3, nope", "1.2.3.4.5"],
)
def test_malformed_hops_on_the_way_fall_back_to_the_peer(header: str) -> None:
    assert client_address("10.0.0.1", [header], PROXIES) == "10.0.0.1"


def test_garbage_left_of_the_client_is_never_read() -> None:
    assert client_address("127.0.0.1", ["garbage, 203.0.113.9"], BALANCER) == "203.0.113.9"


def test_an_overlong_chain_is_not_believed() -> None:
    chain = ", ".join(["10.0.0.1"] * (MAX_FORWARDED_HOPS + 1))
    assert client_address("127.0.0.1", [chain], PROXIES) == "127.0.0.1"


def test_ipv6_clients_are_normalised_and_share_a_bucket_per_slash_64() -> None:
    first = client_address("127.0.0.1", ["2001:DB8:1:2:aaaa::1"], BALANCER)
    second = client_address("127.0.0.1", ["2001:db8:1:2:bbbb::9"], BALANCER)
    other = client_address("127.0.0.1", ["2001:db8:1:3::1"], BALANCER)
    assert first == "2001:db8:1:2:aaaa::1"
    assert address_scope(first) == address_scope(second) == "2001:db8:1:2::/64"
    assert address_scope(other) != address_scope(first)
    assert client_address("127.0.0.1", ["::ffff:203.0.113.9"], BALANCER) == "203.0.113.9"
    assert client_address("fe80::1%eth0", [], BALANCER) == "fe80::1"


def test_a_missing_or_odd_peer_is_passed_as_it_is() -> None:
    assert client_address(None, ["203.0.113.9"], BALANCER) == "unknown"
    assert client_address("unix-socket", ["203.0.113.9"], BALANCER) == "unix-socket"


def test_trusted_proxies_setting_is_canonical_and_checked() -> None:
    assert Settings.from_env({}).trusted_proxies == ()
    settings = Settings.from_env({"OSAGO_TRUSTED_PROXIES": " 127.0.0.1, 10.1.2.3/8 ,::1"})
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    with pytest.raises(SettingsError, match="OSAGO_TRUSTED_PROXIES"):
        Settings.from_env({"OSAGO_TRUSTED_PROXIES": "127.0.0.1,localhost"})


def test_the_browser_quota_default_lets_a_household_through() -> None:
    # A page load is 2-4 API requests; several people behind one NAT load at the same moment.
    assert Settings.from_env({}).browser_rps == 20.0
