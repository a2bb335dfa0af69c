"""A stand-in for the fuzz worker that crashes, hangs or fails on command (the model file's bytes say which).

It lives in its own module, importing nothing of dlc (so no TVM and its slow crash handler), because the fuzz
runner spawns it by name in a fresh interpreter.
"""

import os
import resource
import signal
import time

OK, ERROR = 0, 2


def fake_worker(conn, niceness, memory_limit):
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        argv, out_path, err_path = msg
        model = next(a for a in argv if a.endswith(".onnx"))
        with open(model, "rb") as f:
            action = f.read()
        with open(err_path, "w") as err:
            err.write("dlc: error: bad model\n" if action == b"error" else "")
        if action == b"segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if action == b"abort":
            os.abort()
        if action == b"hang":
            time.sleep(3600)
        conn.send((ERROR, "ModelError", "bad model", 0.0) if action == b"error" else (OK, None, None, 0.0))
