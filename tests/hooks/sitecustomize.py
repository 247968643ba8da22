"""Test hook for tests/e2e/test_daemon.py: pause one table write of a real run so the test can kill
the run worker mid-partition. Python imports this file at start-up only when ``tests/hooks`` is on
``PYTHONPATH`` (the test puts it there for the webserver and daemon it starts); it does nothing
unless ``LAKEHOUSE_TEST_PAUSE_DIR`` is set, and pauses only while ``<dir>/armed`` exists.

``<dir>/armed`` holds the asset key to stop at (``bronze/retail/orders__quarantine``). The first
write of that asset renames it to ``claimed`` (atomic: one run pauses, once), writes
``paused.json`` (pid, run id) and sleeps until it is killed.
"""

import importlib.abc
import importlib.util
import json
import os
import sys
import time

_DIR = os.environ.get("LAKEHOUSE_TEST_PAUSE_DIR")


def _claim(asset: str) -> bool:
    armed = os.path.join(_DIR, "armed")
    try:
        with open(armed) as f:
            if f.read().strip() != asset:
                return False
        os.rename(armed, os.path.join(_DIR, "claimed"))
    except OSError:
        return False
    return True


def _patch(module) -> None:
    original = module.LakehouseIOManager.handle_output

    def handle_output(self, context, obj):
        asset = context.asset_key.to_user_string()
        if _claim(asset):
            tmp = os.path.join(_DIR, "paused.tmp")
            with open(tmp, "w") as f:
                json.dump({"pid": os.getpid(), "run_id": context.run_id, "asset": asset}, f)
            os.rename(tmp, os.path.join(_DIR, "paused.json"))
            time.sleep(600)  # killed by the test long before
        return original(self, context, obj)

    module.LakehouseIOManager.handle_output = handle_output


class _Finder(importlib.abc.MetaPathFinder):
    """Patches lakehouse.io_manager right after it is imported (only run workers write tables)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "lakehouse.io_manager":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if _DIR:
    sys.meta_path.insert(0, _Finder())
