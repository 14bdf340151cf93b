"""A stand-in for the engine interpreter, for failures a real engine cannot be made to produce
on demand (a corrupt result file, a hang to cancel). It is called exactly like the engine's
Python (``INTERPRETER -m engine COMMAND ... -o OUT``) and behaves as ``PROSEPOSE_STANDIN`` says:

* ``crash``: one progress line, then dies with exit code 3 and a traceback-like line;
* ``corrupt``: writes a truncated JSON file to the output path and exits 0;
* ``hang``: prints progress lines until it is terminated;
* ``env``: reports (without the value) whether the API key variable is set, then fails.
"""

import json
import os
import sys
import time

mode = os.environ.get("PROSEPOSE_STANDIN", "crash")
argv = sys.argv[1:]
out = argv[argv.index("-o") + 1] if "-o" in argv else None


def emit(**fields):
    print(json.dumps(fields), flush=True)


if mode == "crash":
    emit(event="progress", stage=1, iteration=1, total=10, losses={})
    print("Traceback (most recent call last): RuntimeError: simulated crash", flush=True)
    sys.exit(3)
elif mode == "corrupt":
    emit(event="progress", stage=1, iteration=10, total=10, losses={})
    with open(out, "w", encoding="utf-8") as handle:
        handle.write('{"schema_version": 1, "frames": [{"frame"')
    emit(event="done", output=out)
elif mode == "hang":
    while True:
        emit(event="progress", stage=1, iteration=1, total=1000, losses={})
        time.sleep(0.05)
elif mode == "env":
    name = argv[argv.index("--api-key-env") + 1] if "--api-key-env" in argv else "OPENAI_API_KEY"
    emit(event="error", message=f"key variable {name} set: {bool(os.environ.get(name))}")
    sys.exit(2)
