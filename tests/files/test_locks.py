"""Folder locks: a lock file that names no holder (empty or garbled: a crash between creating and writing it)
is stale and taken over with a warning; one a live job is writing at that moment is waited for."""

import json
import os
import socket
import threading
import time

import pytest

from mirai_cli.files.locks import FRESH_S, LOCK_FILE, FolderLocked, acquire, release


def test_unreadable_lock_files_are_stale_but_a_fresh_one_is_waited_for(tmp_path, capsys):
    old = time.time() - 10 * FRESH_S
    for i, text in enumerate(["", "{\"pid\": 12", "[1, 2]", "{}"]):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        (folder / LOCK_FILE).write_text(text)
        os.utime(folder / LOCK_FILE, (old, old))
        acquire(folder)
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
        release(folder)
        assert "empty or garbled" in capsys.readouterr().err

    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / LOCK_FILE).write_text("")  # a live job has just created it ...
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": "mirai train", "since": "now"}
    writer = threading.Timer(0.2, lambda: (folder / LOCK_FILE).write_text(json.dumps(holder)))  # ... and writes it
    writer.start()
    with pytest.raises(FolderLocked, match=f"pid {os.getpid()}"):
        acquire(folder)
    writer.join()
