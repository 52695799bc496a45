"""Refuse network connections to anything but this machine (loopback, Unix sockets).

Imported by tests/conftest.py, and by every Python subprocess the tests start (kernels that
execute the notebooks, the CLI), since the tests put this folder on PYTHONPATH. It proves
the course works offline: a stray download fails loudly instead of passing on a machine
that happens to be online.
"""

import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


class NetworkBlocked(ConnectionRefusedError):
    pass


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", "") or str(host).endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_local(address):
        raise NetworkBlocked(f"network access is blocked in the tests: connect to {address!r}")
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise NetworkBlocked(f"network access is blocked in the tests: connect to {address!r}")
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
