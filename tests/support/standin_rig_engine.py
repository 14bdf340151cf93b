"""A stand-in for the engine interpreter answering ``-m engine rig ... --out PATH`` the way a
first run on a fresh machine does: silent for a while (the engine building the body data),
then a progress line, then the rig. ``PROSEPOSE_RIG_STANDIN`` says how it ends:

* ``ok``: copies the rig file ``PROSEPOSE_RIG_SOURCE`` to the output and prints ``done``;
* ``hang``: writes the first half of that rig to the output, then waits until it is stopped
  (a cancel while the engine writes);
* ``truncated``: writes the first half and exits 0 (a rig file cut short).

``PROSEPOSE_RIG_SILENT_S`` is the silent time (default 0); every call appends a line to
``PROSEPOSE_RIG_CALLS`` when that is set.
"""

import json
import os
import sys
import time

argv = sys.argv[1:]
mode = os.environ.get("PROSEPOSE_RIG_STANDIN", "ok")
out = argv[argv.index("--out") + 1]
if os.environ.get("PROSEPOSE_RIG_CALLS"):
    with open(os.environ["PROSEPOSE_RIG_CALLS"], "a", encoding="utf-8") as calls:
        calls.write(" ".join(argv) + "\n")
time.sleep(float(os.environ.get("PROSEPOSE_RIG_SILENT_S", "0")))
print(json.dumps({"event": "progress", "step": "body", "message": "building the Anny body data", "done": 1, "total": 4}), flush=True)
with open(os.environ["PROSEPOSE_RIG_SOURCE"], "rb") as source:
    data = source.read()
if mode == "ok":
    with open(out, "wb") as handle:
        handle.write(data)
    print(json.dumps({"event": "done", "out": out}), flush=True)
else:
    with open(out, "wb") as handle:
        handle.write(data[: len(data) // 2])
    if mode == "hang":
        while True:
            time.sleep(0.05)
