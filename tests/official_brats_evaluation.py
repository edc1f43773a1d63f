"""The official BraTS evaluation (``brats-evaluation``, on ``panoptica``) of prediction/truth pairs.

Run in the environment where that package is installed (``make test`` makes it: ``.venv-brats-eval``;
it pins ``numpy<2.3``, so it cannot share the project's environment), by ``tests/test_official_metrics.py``:

    python official_brats_evaluation.py pairs.json scores.json

``pairs.json`` lists ``{"case", "prediction", "truth", "spacing", "enhancing"}``: two NIfTI files,
the voxel size in mm, and the value of enhancing tumour in them (4 for BraTS 2017-2021, 3 from 2023).
Files in BraTS 2017-2021 values are renumbered to the 2023 values of the package's glioma
configuration (``config_path("gli")``). The arrays go in with their spacing given: read from files,
the package's SimpleITK reader would put the spacing on the wrong axes.

Output: case -> region (``wt``, ``tc``, ``et``) -> the package's own numbers: ``global_bin_dsc`` and
``global_bin_hd95`` (legacy Dice and HD95), ``sq_dsc``, ``sq_hd95``, ``tp``, ``fp``, ``fn`` (its
lesion-wise matching); NaN and infinity as JSON's ``NaN`` and ``Infinity``.
"""

import json
import sys

import nibabel as nib
import numpy as np

KEYS = ("global_bin_dsc", "global_bin_hd95", "sq_dsc", "sq_hd95", "tp", "fp", "fn")


def main() -> None:
    # imported here: pytest imports every module of tests/ for its doctests, in the project's environment
    from brats_evaluation import config_path
    from panoptica import Panoptica_Evaluator

    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    out = {}
    pairs_file, scores_file = sys.argv[1:]
    with open(pairs_file) as f:
        pairs = json.load(f)
    for pair in pairs:
        arrays = []
        for key in ("prediction", "truth"):
            array = np.asarray(nib.load(pair[key]).dataobj).astype(np.uint8)
            if pair["enhancing"] != 3:
                array[array == pair["enhancing"]] = 3
            arrays.append(array)
        result = evaluator.evaluate(*arrays, voxelspacing=tuple(pair["spacing"]))
        out[pair["case"]] = {
            region: {k: float(getattr(result[region], k)) for k in KEYS} for region in ("wt", "tc", "et")
        }
    with open(scores_file, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
