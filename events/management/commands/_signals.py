"""Graceful stop on SIGINT/SIGTERM for the long-running commands."""

import signal
import threading


def stop_event() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
