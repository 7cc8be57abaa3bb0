"""Writing a run folder's settings (run.json); reading a run folder lives in lucidtl.run (its names are
re-exported here for code written against lucidtl.train.run)."""
import json
import os

from lucidtl.atomic import atomic_path
from lucidtl.run import (  # noqa: F401 (re-exported)
    FINAL, MANIFEST, RUN_FILE, build_run_model, check, checkpoints, load_checkpoint, read_manifest, read_settings)


def write_settings(out, settings):
    """run.json of the run folder `out`, written atomically."""
    with atomic_path(os.path.join(out, RUN_FILE)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)
