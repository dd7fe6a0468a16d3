"""Ctrl-C interrupts a blocking pool open against a server that never answers."""

import os
import signal
import socket
import threading
import time

import pytest

import sqlpool


def test_ctrl_c_interrupts_an_eager_open():
    # A listener that never accepts: TCP connects, the start-up never ends.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            sqlpool.Pool(f"postgresql://u:p@127.0.0.1:{port}/db?sslmode=disable", connect_timeout=30)
        assert time.monotonic() - started < 2, "the open was not interrupted"
    finally:
        timer.cancel()
        silent.close()


def test_connect_timeout_bounds_a_silent_server():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(sqlpool.OperationalError) as info:
            sqlpool.Pool(f"postgresql://u:p@127.0.0.1:{port}/db?sslmode=disable", connect_timeout=0.5)
        took = time.monotonic() - started
        assert took < 1.5, took
        assert "connect_timeout" in str(info.value)
    finally:
        silent.close()
