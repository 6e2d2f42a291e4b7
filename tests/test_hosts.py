"""rag.hosts: which Host names a server answers and whose proxy headers it believes."""
from rag.hosts import allowed_hosts, client_address, host_allowed, host_name, is_trusted, parse_proxies


def test_host_name_drops_the_port_and_brackets():
    assert host_name("Example.ORG:7860") == "example.org"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("localhost") == "localhost"


def test_a_loopback_server_answers_its_names_and_refuses_another_site():
    allowed = allowed_hosts("127.0.0.1")
    assert host_allowed("127.0.0.1:7860", allowed) and host_allowed("localhost:7860", allowed)
    assert host_allowed("[::1]:7860", allowed)
    assert not host_allowed("evil.example", allowed) and not host_allowed("evil.example:7860", allowed)


def test_a_bare_address_is_answered_since_rebinding_needs_a_name():
    # a server bound to 0.0.0.0 is reached at its LAN address, which the resolver may not list
    allowed = allowed_hosts("0.0.0.0")
    assert host_allowed("192.0.2.2:7860", allowed) and host_allowed("[2001:db8::1]:80", allowed)
    assert not host_allowed("rag.example", allowed)
    assert host_allowed("rag.example", allowed_hosts("0.0.0.0", ["rag.example"]))
    assert host_allowed("anything.example", allowed_hosts("127.0.0.1", ["*"]))


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    trusted = parse_proxies(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"  # nobody trusted
    assert client_address("198.51.100.7", "203.0.113.9", trusted) == "198.51.100.7"  # peer not a proxy
    # the nearest hop that is not itself a trusted proxy; a client's own forged entries sit further left
    assert client_address("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.2.3", trusted) == "203.0.113.9"


def test_is_trusted_names_the_trusted_proxies_only():
    trusted = parse_proxies(["127.0.0.1", "10.0.0.0/8"])
    assert is_trusted("127.0.0.1", trusted) and is_trusted("10.9.8.7", trusted)
    assert not is_trusted("127.0.0.2", trusted) and not is_trusted("203.0.113.9", trusted)
    assert not is_trusted("localhost", trusted) and not is_trusted("", trusted) and not is_trusted(None, trusted)
    assert not is_trusted("127.0.0.1", ())
