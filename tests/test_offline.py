"""The course works offline: the tests refuse any connection that leaves this machine."""

import socket
import subprocess
import sys

import pytest
import sitecustomize


def test_a_connection_to_the_internet_is_refused():
    with pytest.raises(sitecustomize.NetworkBlocked, match="blocked"):
        socket.create_connection(("93.184.216.34", 80), timeout=2)


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()


def test_subprocesses_are_blocked_too():
    code = ("import socket\n"
            "try:\n"
            "    socket.create_connection(('93.184.216.34', 80), timeout=2)\n"
            "except ConnectionRefusedError as e:\n"
            "    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused: network access is blocked" in out.stdout


def test_widgets_is_installed_only_inside_the_package(tmp_path):
    code = ("import importlib.util\n"
            "print(importlib.util.find_spec('widgets') is None,"
            " importlib.util.find_spec('xai_course.widgets') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.stdout.split() == ["True", "True"]
