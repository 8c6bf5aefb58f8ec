"""adclick_ops.net: a free port can be bound, a bound one is reported busy with the reason."""

from __future__ import annotations

import socket

import pytest

from adclick_ops.net import bind_error, free_port, port_is_free


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_free_port_is_free_until_someone_listens(host):
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port(host)
    assert port_is_free(port, host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, port))
        listener.listen()
        assert not port_is_free(port, host)
        assert "in use" in str(bind_error(port, host)).lower()
