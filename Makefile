# One entry point for set-up, the lessons and the tests.
#   make lessons   generate the phantom data and execute every lesson (quick profile on a CPU)
#   make lab       open the lessons in JupyterLab
#   make test      run the whole test suite (about 40 minutes on 2 cores)
#   make test-fast the suite without the notebooks and the browser (about 5 minutes): the inner loop
#   make docs      build the documentation site into docs/_build/html from the executed lessons (runs
#                  `make lessons` first when results/notebooks lacks them)
#   make lint      ruff (lint and format check) and nbstripout, as the pre-commit hooks run them
#   make dist      the sdist and the wheel (the notebooks, the reference results and the pretrained
#                  teachers inside) into dist/
#   make reference regenerate the reference results the lessons show (pkd_lessons/lessons/reference_brain.json)
# Each target creates the virtual environment in .venv first when it is missing or out of date:
# `make lessons` installs only what the lessons import (the package, papermill and a kernel);
# `make test`, `make docs` and `make lint` add the test, docs and course tools.

PYTHON  ?= python3
VENV    ?= .venv
# torch is pinned here (not in pyproject.toml) so that the build is chosen explicitly. On Linux the
# package index's torch is the CUDA build (several GB of GPU libraries); for the CPU build (about
# 200 MB) on a machine without a GPU: make lessons TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PROFILE ?= auto
OUT     ?= results
# make docs EDITION=student: the site without solutions, hidden tests and model answers
EDITION ?= instructor

# The official BraTS evaluation, which tests/test_official_metrics.py checks the package's metrics
# against, in an environment of its own: it pins numpy<2.3, older than the project's. Optional: where
# it cannot be installed (no package index), that test skips and says why.
OFFICIAL_EVAL ?= .venv-brats-eval
OFFICIAL_EVAL_SPEC ?= brats-evaluation==0.0.10 panoptica==2.1.7

# The oldest ipywidgets declared (Colab's), beside the environment's own: tests/test_viewer.py runs
# the viewer's tests under it too.
WIDGETS_OLDEST ?= ipywidgets==7.7.1 ipython_genutils==0.2.0

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install lessons lab docs test test-fast lint dist reference clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[lessons]"
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -rf .widgets-oldest
	$(BIN)/python -m pip install --quiet --no-deps --target .widgets-oldest $(WIDGETS_OLDEST)
	rm -rf $(OFFICIAL_EVAL)
	$(PYTHON) -m venv $(OFFICIAL_EVAL) && $(OFFICIAL_EVAL)/bin/python -m pip install --quiet $(OFFICIAL_EVAL_SPEC) \
		|| { rm -rf $(OFFICIAL_EVAL); echo "the official BraTS evaluation could not be installed; tests/test_official_metrics.py will skip"; }
	touch $(TEST_STAMP)

lessons: $(STAMP)
	$(BIN)/pkd-lessons lessons --profile $(PROFILE) --out $(OUT)

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[jupyter]"
	$(BIN)/jupyter lab notebooks/

# The site shows the lessons as `make lessons` executed them; it never re-executes them itself.
# -W: a warning (broken reference, missing figure, unknown directive) fails the build.
docs: $(TEST_STAMP)
	@test -f $(OUT)/notebooks/09_real_brats.ipynb || $(MAKE) lessons
	@$(BIN)/python docs/_ext/pkd_site.py $(OUT)/notebooks
	PKD_EXECUTED_LESSONS=$(OUT)/notebooks PKD_SITE_EDITION=$(EDITION) $(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "site: docs/_build/html/index.html"

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not notebook and not browser"

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/nbstripout --keep-id --verify notebooks/*.ipynb

dist: $(TEST_STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# Regenerate the lessons' reference results (every method, trained longer; about 2 hours on 2 cores,
# resumable: runs already trained are reused).
reference: $(STAMP)
	$(BIN)/pkd-lessons reference

clean:
	rm -rf $(VENV) $(OFFICIAL_EVAL) $(OUT) dist build .pytest_cache .widgets-oldest docs/_build docs/lessons docs/api docs/performance docs/phantom
