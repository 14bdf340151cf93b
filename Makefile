# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv from the pinned requirements on first use; the stamp file makes a
# second run skip pip entirely while the requirement files are unchanged.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements/engine.txt requirements/test.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
OUT ?= out

.PHONY: venv test test-engine test-blender demo zip clean

venv: $(STAMP)

$(STAMP): requirements/engine.txt requirements/test.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements/test.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

test: venv
	$(VPY) -m pytest -q tests

demo: venv
	mkdir -p $(OUT)
	$(VPY) -m engine regions --body anny --out $(OUT)/regions.png
	@echo "wrote $(OUT)/regions.png"

zip: venv
	mkdir -p dist
	$(VPY) tools/build_extension.py --out dist

clean:
	rm -rf dist build $(OUT) .pytest_cache
