"""A stand-in for the engine interpreter, for failures a real engine cannot be made to produce
on demand (a corrupt result file, a hang to cancel). It is called exactly like the engine's
Python (``INTERPRETER -m engine COMMAND ... -o OUT``) and behaves as ``PROSEPOSE_STANDIN`` says:

* ``crash``: one progress line, then dies with exit code 3 and a traceback-like line;
* ``corrupt``: writes a truncated JSON file to the output path and exits 0;
* ``hang``: prints progress lines until it is terminated;
* ``echo``: answers a refine job with its own poses, Person 1's ``arm`` joint turned by a known
  rotation (to check the write-back without the optimizer);
* ``env``: reports (without the value) whether the API key variable is set, then fails;
* ``info``: answers ``engine info`` as an interpreter without torch and anny does.
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
elif mode == "echo":
    job = json.load(open(argv[argv.index("refine") + 1], encoding="utf-8"))
    frames = []
    for frame in job["frames"]:
        people = [dict(person) for person in frame["people"]]
        people[0] = dict(people[0], rotations=dict(people[0]["rotations"], arm=[0.8, 0.6, 0.0, 0.0]))
        frames.append({"frame": frame["frame"], "people": people,
                       "constraints": [{"label": "P1 upper - P2 upper", "source": "artist", "weight": 1.0, "before_m": 0.3, "after_m": 0.01}],
                       "losses": {}, "iterations": [1, 1], "wall_time_s": 0.0, "backed_off": False, "warnings": []})
    emit(event="progress", frame=frames[0]["frame"], stage=2, iteration=1, total=1, losses={})
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"schema_version": 1, "body": job["body"], "frames": frames, "wall_time_s": 0.0, "warnings": []}, handle)
    emit(event="done", output=out)
elif mode == "info":
    emit(event="info", engine_version="0.1.0", python="3.11", torch=None,
         bodies={"anny": {"ok": False, "error": "ModuleNotFoundError: No module named 'anny'"},
                 "smplx": {"package": False, "file": None, "file_ok": False, "ok": False}})
elif mode == "env":
    name = argv[argv.index("--api-key-env") + 1] if "--api-key-env" in argv else "OPENAI_API_KEY"
    emit(event="error", message=f"key variable {name} set: {bool(os.environ.get(name))}")
    sys.exit(2)
