"""The corpus of bad command lines (issue 13): every one ends with exit code 2, exactly one line on stderr
naming the problem, no traceback, and nothing written where the output would go.

Cases run in-process through each command's main(argv) (tests/conftest.py cli_exit); a few run as the real
`python -m` entry point."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_entries import entry
from conftest import build_tiny_cnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = [
    # ---- render -----------------------------------------------------------------------------------------
    ("render", "--stpes 8 --out {out}", "unknown flag --stpes; did you mean --steps?"),
    ("render", "bogus --out {out}", "unknown command 'bogus'; commands: render, layers"),
    ("render", "--negative maybe --out {out}", "--negative is a yes/no flag"),
    ("render", "--decorrelate perhaps --out {out}", "--decorrelate is a yes/no flag"),
    ("render", "--size 0 --out {out}", "--size must be an integer >= 16"),
    ("render", "--size 100000 --out {out}", "--size must be an integer <= 4096"),
    ("render", "--size big --out {out}", "--size must be an integer"),
    ("render", "--size 32.5 --out {out}", "--size must be an integer"),
    ("render", "--steps -1 --out {out}", "--steps must be an integer >= 0"),
    ("render", "--channels a-b --out {out}", "use e.g. 7, 0:8, 1,5,9 or all"),
    ("render", "--channels 3:x --out {out}", "cannot read channels"),
    ("render", "--thresholds x --out {out}", "is not a non-negative integer"),
    ("render", "--thresholds 1,-2 --out {out}", "is not a non-negative integer"),
    ("render", "--steps 2 --thresholds 5 --out {out}", "beyond --steps 2"),
    ("render", "--param fourier --out {out}", "choose one of fft, pixel, laplacian, cppn"),
    ("render", "--transforms fancy --out {out}", "choose one of standard, distill, none"),
    ("render", "--diversity -1 --out {out}", "--diversity must be a number >= 0"),
    ("render", "--diversity lots --out {out}", "--diversity must be a number"),
    ("render", "--seed -3 --out {out}", "--seed must be an integer >= 0"),
    ("render", "--batch-size 0 --out {out}", "--batch-size must be an integer >= 1"),
    ("render", "--batch_size x --out {out}", "--batch-size must be an integer"),
    ("render", "--out {file}", "is a file, not a folder"),
    ("render", "--out {file}/sub", "is not a folder"),
    ("render", "--out /dev/null/x", "/dev/null is not a folder"),
    ("render", "--layer --out {out}", "--layer needs a value"),
    ("render", "-s 3 --out {out}", "unknown flag -s; flags start with --"),
    ("render", "--run {missing} --out {out}", "run folder"),
    ("render", "--checkpoint 5 --out {out}", "--checkpoint needs --run"),
    ("render", "--checkpoint soon --out {out}", "--checkpoint must be a saved iteration"),
    ("render", "--run {hrun} --checkpoint 999 --layer mixed --out {out}", "no checkpoint at iteration 999"),
    ("render", "--run {hrun} --layer mixd --channels 0:2 --size 16 --out {out}", "unknown layer 'mixd'"),
    ("render", "--run {hrun} --layer mixed --channels 12 --size 16 --out {out}", "out of range"),
    ("render", "--run {hrun} --layer mixed --channels 4:40 --size 16 --out {out}", "goes beyond"),
    ("render", "--model {tiny} --layer conv1_relu --channels 8 --size 16 --out {out}", "out of range"),
    ("render", "--model {missing}.keras --out {out}", "does not exist"),
    ("render", "--model inception_v2 --out {out}", "closest: inception_v1"),
    ("render", "--model {tiny} --weights {missing}.weights.h5 --out {out}", "does not exist"),
    ("render", "--model {tiny} --weights {garbage} --layer conv1_relu --out {out}", "garbage"),
    ("render", "layers --al", "unknown flag --al; did you mean --all?"),
    ("render", "layers --model no_such_model", "unknown model"),
    ("render", "--weights {bad_targz} --size 16 --out {out}", "inception_v1.tar.gz"),
    ("render", "--weights {hrun}/iter_000010.weights.h5 --size 16 --out {out}", "--run {hrun} --checkpoint N"),
    ("render", "--run {hrun_badjson} --layer mixed --size 16 --out {out}", "hrun_badjson/run.json"),
    # ---- train ------------------------------------------------------------------------------------------
    ("train", "--dataset folder:{images} --iteration 5 --out {out}", "did you mean --iterations?"),
    ("train", "--dataset folder:{images} --image-size 0 --out {out}", "--image-size must be an integer >= 1"),
    ("train", "--dataset folder:{images} --learning-rate abc --out {out}", "--learning-rate must be a number"),
    ("train", "--dataset folder:{images} --learning-rate 0 --out {out}", "--learning-rate must be a number > 0"),
    ("train", "--dataset folder:{images} --recipe papr --out {out}", "did you mean paper?"),
    ("train", "--dataset folder:{images} --optimizer adamw --out {out}", "choose one of adam, rmsprop, sgd"),
    ("train", "--dataset folder:{images} --top triple --out {out}", "choose one of paper, single"),
    ("train", "--dataset folder:{images} --batch-size -1 --out {out}", "--batch-size must be an integer >= 1"),
    ("train", "--dataset folder:{images} --epochs 0 --out {out}", "--epochs must be an integer >= 1"),
    ("train", "--dataset folder:{missing} --out {out}", "does not exist"),
    ("train", "--out {out}", "train needs --dataset"),
    ("train", "--dataset folder:{images} --out {file}", "is a file, not a folder"),
    ("train", "--dataset folder:{images} --validation-split 2 --out {out}", "--validation-split must be a number <= 1"),
    ("train", "--dataset folder:{images} --backup-seconds -1 --out {out}", "--backup-seconds must be a number >= 0"),
    ("train", "--dataset folder:{images} --visualize Mixed_4c --out {out}", "cannot read channel"),
    ("train", "--dataset folder:{images} --save-format h5 --out {out}", "choose one of weights, keras"),
    ("train", "--dataset folder:{images} --augment perhaps --out {out}", "--augment is a yes/no flag"),
    ("train", "--dataset folder:{images} --seed x --out {out}", "--seed must be an integer"),
    ("train", "--dataset folder:{images} --mixed-precision float8 --out {out}", "unknown --mixed-precision 'float8'"),
    ("train", "--dataset folder:{images} --visualize-size 8 --out {out}", "--visualize-size must be an integer >= 16"),
    ("train", "--dataset mnist --weights random --out {out}", "unknown dataset 'mnist'"),
    ("train", "--dataset folder:{images} --model tiny_models.tiny_backbone --weights random --iterations 2 "
              "--image-size 16 --batch-size 2 --visualize conv1_relu:99 --out {out}",
     "--visualize channel conv1_relu:99 is out of range"),
    ("train", "--dataset folder:{bad_images} --model tiny_models.tiny_backbone --weights random --iterations 2 "
              "--image-size 16 --batch-size 2 --noprogress --notensorboard --out {out}", "a/broken.jpg"),
    # ---- figures ----------------------------------------------------------------------------------------
    ("figures", "temporal --run {krun} --chanels conv1_relu:1 --out {out}", "did you mean --channels?"),
    ("figures", "prepost --run {krun} --channels 9999 --out {out}", "cannot read channel '9999'"),
    ("figures", "prepost --run {krun} --channels conv1_relu:9999 --size 16 --steps 1 --out {out}", "out of range"),
    ("figures", "prepost --run {krun} --channels convx:1 --size 16 --steps 1 --out {out}", "unknown layer 'convx'"),
    ("figures", "figure7 --run {krun} --layers conv1_relu --channels all --out {out}", "a range or list"),
    ("figures", "temporal --run {missing} --channels a:1 --out {out}", "does not exist"),
    ("figures", "bogus --out {out}", "unknown command 'bogus'; commands: temporal, prepost, figure7"),
    ("figures", "temporal --run {krun} --channels conv1_relu:1 --checkpoints 7 --out {out}",
     "no checkpoint at iteration 7"),
    ("figures", "temporal --run {krun} --channels conv1_relu:1 --checkpoints x --out {out}",
     "is not a non-negative integer"),
    ("figures", "temporal --run {krun} --channels conv1_relu:1 --size 8 --out {out}", "--size must be an integer >= 16"),
    ("figures", "temporal --run {krun} --channels conv1_relu:1 --steps 0 --out {out}", "--steps must be an integer >= 1"),
    ("figures", "prepost --run {krun} --channels conv1_relu:1 --out {file}", "is a file, not a folder"),
    ("figures", "prepost --run {krun} --out {out}", "prepost needs --channels"),
    ("figures", "prepost --run {empty} --channels conv1_relu:1 --out {out}", "has no checkpoints.json"),
    ("figures", "temporal --run {krun} --channels conv1_relu:1 --seed -1 --out {out}", "--seed must be an integer >= 0"),
    # ---- atlas ------------------------------------------------------------------------------------------
    ("atlas", "sites", "unknown command 'sites'; did you mean site?"),
    ("atlas", "render --runs {missing} --out {out}", "does not exist"),
    ("atlas", "render --runs {krun} --batch-size 0 --out {out}", "--batch-size must be an integer >= 1"),
    ("atlas", "render --runs {krun} --shard 3/2 --out {out}", "cannot read --shard"),
    ("atlas", "render --runs {krun} --size 8 --out {out}", "--size must be an integer >= 16"),
    ("atlas", "render --runs {krun} --transforms x --out {out}", "choose one of standard, distill, none"),
    ("atlas", "render --runs {krun} --out {file}", "is a file, not a folder"),
    ("atlas", "render --runs {krun} --layers nope --out {out}", "unknown layer 'nope'"),
    ("atlas", "render --runs {krun} --layers conv1_relu --channels 999 --out {out}", "out of range"),
    ("atlas", "render --runs {krun} --stepz 3 --out {out}", "did you mean --steps?"),
    ("atlas", "render --runs {krun} --seed -1 --out {out}", "--seed must be an integer >= 0"),
    ("atlas", "render --runs {krun} --channels x --out {out}", "use e.g. 7, 0:8, 1,5,9 or all"),
    ("atlas", "render --out {out}", "nothing to render"),
    ("atlas", "render --runs {krun_badjson} --layers conv1_relu --size 16 --steps 1 --out {out}",
     "krun_badjson/checkpoints.json"),
    ("atlas", "render --runs {hrun_badjson} --layers mixed --size 16 --steps 1 --out {out}",
     "hrun_badjson/run.json"),
    ("atlas", "site --atlas {missing} --out {out}", "is not an atlas folder (no atlas.json)"),
    ("atlas", "site --atlas {krun} --out {file}", "is a file, not a folder"),
    ("atlas", "site --copyy --out {out}", "did you mean --copy?"),
    ("atlas", "site --atlas {atlas_badline} --out {out}", "is not a render record"),
    ("atlas", "site --atlas {atlas_empty} --copy --out {out}", "no rendered images"),
    ("atlas", "site --copy maybe --out {out}", "--copy is a yes/no flag"),
    # ---- analyze ----------------------------------------------------------------------------------------
    ("analyze", "similarity --layrs x --out {out}", "did you mean --layers?"),
    ("analyze", "table --csv {missing} --out {out}", "cannot read --csv file"),
    ("analyze", "table --csv {csv},{csv} --labels a --out {out}", "--labels has 1 names for 2 --csv files"),
    ("analyze", "table --csv {csv} --metrics bogus --out {out}", "unknown metric 'bogus'"),
    ("analyze", "table --csv {csv} --out {file}", "is a file, not a folder"),
    ("analyze", "scale --images {missing} --out {out}", "does not exist"),
    ("analyze", "scale --images {renders} --window box --out {out}", "choose one of hann, none"),
    ("analyze", "redundancy --images {renders} --compare telepathy --out {out}", "choose one of pixels, activations"),
    ("analyze", "redundancy --images {renders} --compare activations --out {out}", "needs --embed_layer"),
    ("analyze", "examples --run {krun} --reduce median --out {out}", "choose one of max, mean"),
    ("analyze", "similarity --run {krun} --alpha 2 --out {out}", "--alpha must be a number <= 1"),
    ("analyze", "similarity --run {krun} --samples all --out {out}", "choose one of positions, pooled"),
    ("analyze", "similarity --run {krun} --layers conv1_relu --dataset {garbage_npy} --out {out}",
     "cannot read"),
    ("analyze", "similarity --run {krun} --layers conv1_relu --dataset {bad_shape_npy} --out {out}",
     "expected images [N, H, W, C]"),
    ("analyze", "similarity --run {krun} --layers conv1_relu --dataset folder:{missing} --out {out}",
     "does not exist"),
    ("analyze", "similarity --run {krun} --max-images 0 --out {out}", "--max-images must be an integer >= 1"),
    ("analyze", "examples --run {krun} --k 0 --out {out}", "--k must be an integer >= 1"),
    ("analyze", "examples --run {krun} --layer conv1_relu --channels 40 --dataset {npy} --out {out}",
     "out of range"),
    ("analyze", "bogus", "unknown command 'bogus'"),
    ("analyze", "similarity --run {krun_badjson} --layers conv1_relu --dataset {npy} --out {out}",
     "krun_badjson/checkpoints.json"),
    ("analyze", "similarity --run {krun} --dataset {npy} --out {out}", "no layers"),
    ("analyze", "similarity --layers conv1_relu --dataset {npy} --out {out}", "no checkpoints"),
    ("analyze", "similarity --weights {missing}.weights.h5 --out {out}", "cannot read --weights file"),
    # ---- stylegan ---------------------------------------------------------------------------------------
    ("stylegan", "ascent --chanel 3 --out {out}", "did you mean --channel?"),
    ("stylegan", "ascent --lam -1 --out {out}", "--lam must be a number >= 0"),
    ("stylegan", "ascent --pickle {missing}.pkl --out {out}", "cannot read --pickle file"),
    ("stylegan", "ascent --noise sometimes --out {out}", "choose one of resample, fixed"),
    ("stylegan", "ascent --resize cubic --out {out}", "choose one of bilinear, area"),
    ("stylegan", "ascent --steps -1 --out {out}", "--steps must be an integer >= 0"),
    ("stylegan", "ascent --learning-rate abc --out {out}", "--learning-rate must be a number"),
    ("stylegan", "ascent --channel -2 --out {out}", "--channel must be an integer >= 0"),
    ("stylegan", "repeats --repeats 1 --pickle {garbage} --out {out}", "--repeats must be an integer >= 2"),
    ("stylegan", "ablation --cols 0 --out {out}", "--cols must be an integer >= 1"),
    ("stylegan", "ablation --max-k -1 --out {out}", "--max-k must be an integer >= 0"),
    ("stylegan", "convert --pickle {garbage} --out {file}", "is a file, not a folder"),
    ("stylegan", "side-by-side --channels x --out {out}", "use e.g. 7, 0:8, 1,5,9 or all"),
    ("stylegan", "ascnt", "unknown command 'ascnt'; did you mean ascent?"),
    ("stylegan", "ascent --pickle {garbage} --model {tiny} --layer fused --channel 99999 --out {out}",
     "channel 99999 is out of range"),
    ("stylegan", "ascent --pickle {garbage} --model {tiny} --layer fusd --out {out}", "unknown layer 'fusd'"),
    ("stylegan", "ascent --pickle {garbage} --model {tiny} --layer fused --out {out}", "garbage"),
    ("stylegan", "ascent --w-plus maybe --out {out}", "--w-plus is a yes/no flag"),
    ("stylegan", "ascent --pickle {pkl_no_torgb} --model {tiny} --layer fused --out {out}",
     "lacks the variable G_synthesis/16x16/ToRGB/weight"),
    ("stylegan", "ascent --pickle {pkl_2d_torgb} --model {tiny} --layer fused --out {out}",
     "variable G_synthesis/8x8/ToRGB/weight has shape [16, 3], expected a 4-D"),
    ("stylegan", "ascent --pickle {pkl_bad_entry} --model {tiny} --layer fused --out {out}",
     "variable entry 3 is a tuple of 1, not a (name, value) pair"),
    ("stylegan", "convert --pickle {pkl_bad_entry} --out {out}", "not a (name, value) pair"),
    ("stylegan", "ascent --run {hrun} --checkpoint 7 --pickle {garbage} --layer mixed --out {out}",
     "no checkpoint at iteration 7"),
    # ---- export -----------------------------------------------------------------------------------------
    ("export", "classifer --out {out}", "unknown command 'classifer'; did you mean classifier?"),
    ("export", "classifier --model {tiny}", "no output folder; pass --out DIR"),
    ("export", "classifier --model {tiny} --out {file}", "is a file, not a folder"),
    ("export", "renderer --size 0 --out {out}", "--size must be an integer >= 16"),
    ("export", "renderer --transforms x --out {out}", "choose one of standard, distill, none"),
    ("export", "renderer --layr x --out {out}", "did you mean --layer?"),
    ("export", "classifier --image-size 0 --out {out}", "--image-size must be an integer >= 1"),
    ("export", "renderer --sd -1 --out {out}", "--sd must be a number > 0"),
    ("export", "classifier --run {missing} --out {out}", "does not exist"),
    ("export", "renderer --out /dev/null/x", "/dev/null is not a folder"),
    ("export", "classifier --include-top perhaps --out {out}", "--include-top is a yes/no flag"),
    ("export", "renderer --model {tiny} --layer branch_a_rel --out {out}", "closest: branch_a_relu"),
    ("export", "classifier --run {hrun} --checkpoint 3 --out {out}", "no checkpoint at iteration 3"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good and bad input files, created once."""
    from lucidtl.analysis import tables
    from lucidtl.imageio import save_png
    from lucidtl.models import save_model
    from test_analysis import make_head_run

    root = tmp_path_factory.mktemp("inputs")
    tiny = build_tiny_cnn()
    save_model(tiny, str(root / "tiny.keras"))
    # a run saved as .keras checkpoints (needs no run.json) ...
    krun = root / "krun"
    krun.mkdir()
    records = []
    for it in (0, 5):
        save_model(tiny, str(krun / f"iter_{it:06d}.keras"))
        records.append({"iteration": it, "requested": it, "epoch": 0, "path": f"iter_{it:06d}.keras",
                        "metrics": {}, "wall_time": 0.0})
    (krun / "checkpoints.json").write_text(json.dumps({"format": "keras", "checkpoints": records}))
    # ... and one as lucidtl.train writes it: run.json + weights-only checkpoints of backbone + head
    hrun = make_head_run(root / "hrun", tiny)
    (root / "empty").mkdir()
    for c in ("a", "b"):
        for i in range(2):
            save_png(np.full((8, 8, 3), 0.2 * i), str(root / "images" / c / f"{i}.png"))
    save_png(np.full((16, 16, 3), 0.5), str(root / "renders" / "Mixed_4c_0000_512.png"))
    np.save(root / "x.npy", np.random.default_rng(0).uniform(size=(4, 12, 12, 3)).astype(np.float32))
    np.save(root / "flat.npy", np.zeros((4, 12)))
    (root / "garbage.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    (root / "garbage").write_bytes(b"\x80\x04 garbage")
    tables.write_csv([{"run": "r", "iteration": 0, "reference": 0, "layer": "l", "pwsm_theta": 0.0,
                       "procrustes_norm": 0.0, "cka": 1.0}], str(root / "sim.csv"))
    import shutil

    from lucidtl.atlas import job

    shutil.copytree(root / "images", root / "bad_images")
    (root / "bad_images" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    job.render(runs=str(krun), layers="conv1_relu", channels="0:2", size=16, steps=1, out=str(root / "atlas"),
               progress=False)
    shutil.copytree(root / "atlas", root / "atlas_badline")
    manifest = next(n for n in os.listdir(root / "atlas_badline") if n.startswith("manifest"))
    with open(root / "atlas_badline" / manifest, "a") as f:
        f.write('{"broken": \n')
    shutil.copytree(root / "atlas", root / "atlas_empty")
    os.remove(root / "atlas_empty" / manifest)
    shutil.copytree(krun, root / "krun_badjson")
    (root / "krun_badjson" / "checkpoints.json").write_text('{"format": "keras", "checkpoints": [')
    shutil.copytree(hrun, root / "hrun_badjson")
    (root / "hrun_badjson" / "run.json").write_text('{"model": ')
    (root / "inception_v1.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 truncated")
    pickles = _malformed_stylegan_pickles(root)
    return {"bad_images": root / "bad_images", "atlas_badline": root / "atlas_badline",
            "atlas_empty": root / "atlas_empty", "krun_badjson": root / "krun_badjson", "hrun_badjson": root / "hrun_badjson",
            "bad_targz": root / "inception_v1.tar.gz", "tiny": root / "tiny.keras", "krun": krun, "hrun": hrun, "empty": root / "empty",
            "images": root / "images", "renders": root / "renders", "npy": root / "x.npy",
            "bad_shape_npy": root / "flat.npy", "garbage_npy": root / "garbage.npy", "garbage": root / "garbage",
            "csv": root / "sim.csv", "missing": root / "missing", **pickles}


def _malformed_stylegan_pickles(root):
    """Official-layout StyleGAN2 pickles with one defect each (written as tests/test_stylegan2.py does)."""
    from test_stylegan2 import register_dnnlib, write_official_pickle

    def index(synth, name):
        return next(i for i, entry in enumerate(synth) if entry[0] == name)

    edits = {
        "pkl_no_torgb": lambda gs, m, s: s.pop(index(s, "16x16/ToRGB/weight")),
        "pkl_2d_torgb": lambda gs, m, s: s.__setitem__(index(s, "8x8/ToRGB/weight"),
                                                       ("8x8/ToRGB/weight", np.zeros((16, 3), np.float32))),
        "pkl_bad_entry": lambda gs, m, s: s.insert(3, ("8x8/Conv1/weight",)),
    }
    paths = {}
    with pytest.MonkeyPatch.context() as mp:  # pickle records the global dnnlib.tflib.network.Network
        register_dnnlib(mp)
        for key, edit in edits.items():
            paths[key] = root / f"{key}.pkl"
            write_official_pickle(paths[key], edit=edit)
    return paths


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 100
    for module in ("render", "train", "figures", "atlas", "analyze", "stylegan", "export"):
        assert sum(1 for m, _, _ in CASES if m == module) >= 10, module


@pytest.mark.parametrize("module,argv,needle", CASES, ids=[f"{m}:{a[:40]}" for m, a, _ in CASES])
def test_bad_command_line(module, argv, needle, inputs, tmp_path, capsys, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # default output folders (out/, atlas/, analysis/) would land here
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    out = tmp_path / "out"
    values = {k: str(v) for k, v in inputs.items()}
    values.update(out=str(out), file=str(a_file))
    args = [a.format(**values) for a in argv.split()]
    main, _ = entry(module)
    with pytest.raises(SystemExit) as e:
        main(args)
    captured = capsys.readouterr()
    assert e.value.code == 2, (argv, captured.err[-3000:])
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, captured.err[-3000:])
    assert "Traceback" not in captured.err and needle.format(**values) in lines[0], (argv, lines[0])
    assert not out.exists() and a_file.read_text() == "keep" and os.listdir(work) == []


def test_real_entry_point_mistyped_flag(tmp_path):
    """The real thing: `python -m lucidtl.render --stpes 8 --out X` exits 2 in well under 15 s, X absent."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for argv, needle in ((["lucidtl.render", "--stpes", "8", "--out", "X"], "did you mean --steps?"),
                         (["lucidtl.train", "--dataset", "folder:.", "--iteration", "5", "--out", "X"],
                          "did you mean --iterations?"),
                         (["lucidtl.atlas", "render", "--runs", "nowhere", "--out", "X"], "does not exist")):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True, text=True, env=env,
                              timeout=120)
        assert time.perf_counter() - start < 15
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
        assert not (tmp_path / "X").exists()


def test_real_entry_point_error_after_tensorflow_starts(tmp_path, inputs):
    """A mistake found after TensorFlow is loaded (a channel out of range) is still one line, and
    TensorFlow's start-up log lines do not reach the terminal."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.run([sys.executable, "-m", "lucidtl.render", "--model", str(inputs["tiny"]), "--layer",
                           "conv1_relu", "--channels", "9", "--size", "16", "--out", "X"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["error: channel 9 is out of range: the layer has 8 channels (0..7)"]
    assert not (tmp_path / "X").exists()
