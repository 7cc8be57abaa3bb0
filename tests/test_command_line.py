"""The one command line (lucidtl/cli.py): checks before work, help, one vocabulary, documented lines that run
(README.md and every docs/ page)."""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_entries import MODULES, all_commands, entry
from lucidtl import cli, selection
from lucidtl.errors import ChannelRangeError, InvalidArgumentError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
def one_error_line(code, captured):
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


# ---- channel selection: one syntax --------------------------------------------------------------------

def test_channel_syntax_is_one_grammar():
    assert selection.parse_channels("7", 10) == [7]
    assert selection.parse_channels("0:8", 10) == list(range(8))
    assert selection.parse_channels("0:8:3", 10) == [0, 3, 6]
    assert selection.parse_channels("1,5,9", 10) == [1, 5, 9]
    assert selection.parse_channels("all", 4) == [0, 1, 2, 3]
    assert selection.parse_channels("8:", 10) == [8, 9]
    assert selection.parse_channels((2, 3), 10) == [2, 3] and selection.parse_channels(4, 10) == [4]
    with pytest.raises(ChannelRangeError, match="has 10 channels"):
        selection.parse_channels("1,10", 10)
    with pytest.raises(InvalidArgumentError, match="use e.g."):
        selection.parse_channels("a-b", 10)
    pairs = selection.parse_layer_channels("Mixed_4c:1,5,9,Mixed_5b:0:2,Mixed_4c:all",
                                           {"Mixed_4c": 3 + 7, "Mixed_5b": 4}.get)
    assert pairs[:5] == [("Mixed_4c", 1), ("Mixed_4c", 5), ("Mixed_4c", 9), ("Mixed_5b", 0), ("Mixed_5b", 1)]
    assert len(pairs) == 5 + 7  # all of Mixed_4c adds the 7 not listed yet, in order
    assert selection.parse_layer_channels([("a", 1), ("b", 2)]) == [("a", 1), ("b", 2)]
    for bad in ("3", "Mixed_4c", "Mixed_4c:x", ":3"):
        with pytest.raises(InvalidArgumentError):
            selection.parse_layer_channels(bad)
    with pytest.raises(ChannelRangeError):
        selection.parse_layer_channels("a:0:9", {"a": 4}.get)
    # a selection needs the layer's size exactly when it is `all` or an open range, whatever its step
    for spec, needs in (("a:4::2", True), ("a:0:4,all", True), ("a:8:", True), ("a:0:4,7", False),
                        ("a:1,5:9:2", False)):
        assert selection.needs_sizes(spec) is needs, spec
    assert selection.parse_layer_channels("a:4::2", {"a": 9}.get) == [("a", 4), ("a", 6), ("a", 8)]


def test_parse_channels_has_one_home():
    """render, atlas, analyze, stylegan, figures and the live callback use lucidtl.selection."""
    from lucidtl import render
    from lucidtl.train import live

    assert render.parse_channels is selection.parse_channels
    assert live.parse_channels("Mixed_4c:0:2,Mixed_5b:3") == [("Mixed_4c", 0), ("Mixed_4c", 1), ("Mixed_5b", 3)]
    for path in ("lucidtl/render.py", "lucidtl/figures.py", "lucidtl/analyze.py", "lucidtl/stylegan.py",
                 "lucidtl/atlas/plan.py", "lucidtl/analysis/examples.py", "lucidtl/train/live.py"):
        text = open(os.path.join(ROOT, path)).read()
        assert "def parse_channels" not in text or path.endswith("live.py"), path


# ---- checks before work, in-process -------------------------------------------------------------------

def _typo(name):
    """A plausible typo: two neighbouring letters swapped in the middle (steps -> stpes)."""
    i = max(1, len(name) // 2 - 1)
    return name[:i] + name[i + 1] + name[i] + name[i + 2:]


def test_every_mistyped_flag_of_every_subcommand_is_named(tmp_path, capsys, monkeypatch):
    """For every flag of every sub-command of every command: the typo exits 2 before any work, one line,
    naming the real flag; nothing is written and nothing heavy is imported."""
    monkeypatch.chdir(tmp_path)
    checked = 0
    for module, main, commands, sub, command in all_commands():
        spec = cli.describe(command, sub)
        for name in spec.params:
            if len(name) < 4:
                continue
            typo = _typo(name)
            if typo == name or typo in spec.params:
                continue
            argv = ([sub] if len(commands) > 1 else []) + [cli.flag(typo), "1", "--out", "X"]
            with pytest.raises(SystemExit) as e:
                main(argv)
            line = one_error_line(e.value.code, capsys.readouterr())
            assert f"unknown flag {cli.flag(typo)}; did you mean {cli.flag(name)}?" in line, (module, sub, line)
            checked += 1
    assert checked > 150 and os.listdir(tmp_path) == []


def test_unknown_subcommand_and_help(capsys):
    for module in MODULES:
        main, commands = entry(module)
        if len(commands) > 1:
            with pytest.raises(SystemExit) as e:
                main(["bogus"])
            line = one_error_line(e.value.code, capsys.readouterr())
            assert line == f"error: unknown command 'bogus'; commands: {', '.join(commands)}"
        with pytest.raises(SystemExit) as e:
            main(["--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0
        for sub, command in commands.items():
            spec = cli.describe(command, sub)
            assert spec.summary, (module, sub)  # every command says what it does in one line
            if len(commands) > 1:
                assert re.search(rf"^  {re.escape(sub)} +{re.escape(spec.summary[:40])}", out, re.M), (module, sub)
            with pytest.raises(SystemExit):
                main(([sub] if len(commands) > 1 else []) + ["--help"])
            text = capsys.readouterr().out
            assert f"\n{sub}: {spec.summary}" in text  # titled with its own name
            for name, p in spec.params.items():  # every flag, with its meaning
                row = next(line for line in text.splitlines() if line.startswith(f"  {cli.flag(name)}"))
                assert p.doc and p.doc[:30] in row, (module, sub, name, row)


@pytest.mark.parametrize("argv,needle", [
    (["--size", "0"], "--size must be an integer >= 16, got 0"),
    (["--size", "100000"], "--size must be an integer <= 4096, got 100000"),
    (["--negative", "maybe"], "--negative is a yes/no flag"),
    (["--diversity", "abc"], "--diversity must be a number, got 'abc'"),
    (["--transforms", "standrd"], "did you mean standard?"),
    (["--checkpoint", "ten"], "--checkpoint must be a saved iteration (e.g. 10) or last"),
    (["--thresholds", "1,x"], "'x' is not a non-negative integer"),
    (["--layer"], "--layer needs a value"),
])
def test_values_are_typed_from_the_signature(tmp_path, capsys, argv, needle):
    from lucidtl import render

    with pytest.raises(SystemExit) as e:
        render.main([*argv, "--out", str(tmp_path / "o")])
    assert needle in one_error_line(e.value.code, capsys.readouterr())
    assert not (tmp_path / "o").exists()


def test_values_reach_the_function_with_their_types(capsys):
    got = {}

    def command(size=128, rate=0.5, names=None, negative=False, channels="0:8", out="o"):
        """Test.

        Args:
            size (int >= 1): a size
            names (list): names
        """
        got.update(size=size, rate=rate, names=names, negative=negative, channels=channels)

    cli.run({"c": command}, "c", ["--size", "3", "--rate", "2", "--names", "pets,flowers", "--nonegative",
                                  "--channels", "1,5,9"])
    assert got == {"size": 3, "rate": 2.0, "names": ["pets", "flowers"], "negative": False, "channels": "1,5,9"}
    cli.run({"c": command}, "c", ["--names=a", "--negative", "true", "--dry-run"])
    assert "--names = a" in capsys.readouterr().out and got["names"] == ["pets", "flowers"]  # not run


def test_out_must_be_a_folder_that_can_be_made(tmp_path, capsys):
    from lucidtl import analyze

    a_file = tmp_path / "f.txt"
    a_file.write_text("keep")
    for out, needle in ((a_file, "is a file, not a folder"), (a_file / "sub", "is not a folder"),
                        ("/dev/null/x", "/dev/null is not a folder")):
        with pytest.raises(SystemExit) as e:
            analyze.main(["scale", "--images", str(tmp_path), "--out", str(out)])
        assert needle in one_error_line(e.value.code, capsys.readouterr())
    assert a_file.read_text() == "keep"


def test_error_boundary_turns_bad_files_into_one_line(tmp_path, capsys):
    corrupt = tmp_path / "settings.json"
    corrupt.write_text('{"size": 1')
    garbage = tmp_path / "x.npy"
    garbage.write_bytes(b"not an array")

    def read_json(path=None):
        """Reads JSON."""
        with open(path) as f:
            json.load(f)

    def read_npy(path=None):
        """Reads an array."""
        np.load(path)

    def bug():
        """A genuine bug keeps its traceback."""
        return 1 / 0

    commands = {"json": read_json, "npy": read_npy, "bug": bug}
    for argv, needle in ((["json", "--path", str(corrupt)], f"{corrupt} is not valid JSON"),
                         (["json", "--path", str(tmp_path / "none.json")], "No such file"),
                         (["npy", "--path", str(garbage)], f"cannot read {garbage}")):
        with pytest.raises(SystemExit) as e:
            cli.run(commands, "json", argv)
        assert needle in one_error_line(e.value.code, capsys.readouterr())
    with pytest.raises(ZeroDivisionError):
        cli.run(commands, "json", ["bug"])


def test_help_and_checks_import_no_tensorflow():
    """Every entry module, its help and its flag checks run without importing TensorFlow or Keras."""
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "sys.path.insert(0, 'tests')\n"
        "from cli_entries import all_commands\n"
        "from lucidtl import cli\n"
        "for module, main, commands, sub, command in all_commands():\n"
        "    for argv in (['--help'], [sub, '--help'], [sub, '--bogus-flag']):\n"
        "        try:\n"
        "            main(argv if len(commands) > 1 or argv == ['--help'] else argv[1:])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'fire') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - t, file=sys.stderr)\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    report = proc.stderr.strip().splitlines()[-1]
    assert report.startswith("HEAVY [] SECONDS"), proc.stderr[-2000:]
    assert wall < 10  # all seven commands' help, sub-command help and checks, interpreter start included


def test_real_entry_points_are_fast_and_exact(tmp_path):
    """`python -m lucidtl.render --stpes 8 --out X`: exit 2, one line naming --steps, X absent, quickly;
    `figures prepost --help` is titled prepost, in well under 3 s."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lucidtl.render", "--stpes", "8", "--out", "X"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    took = time.perf_counter() - start
    assert proc.returncode == 2 and proc.stderr == "error: unknown flag --stpes; did you mean --steps?\n"
    assert not (tmp_path / "X").exists() and took < 15
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lucidtl.figures", "prepost", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "\nprepost: Figures 2/3" in proc.stdout and "--channels" in proc.stdout
    assert time.perf_counter() - start < 3


# ---- one vocabulary -----------------------------------------------------------------------------------

OLD_NAMES = {"batch", "lr", "data", "run_dir", "max_k_"}


def _base(kind):
    return kind.split()[0] if kind.split()[0] in ("int", "number") else kind


def test_one_vocabulary_across_all_commands():
    """A flag name means one thing: its type (base) and meaning agree with cli.VOCABULARY in every command;
    no command keeps an old spelling as a parameter; --out is always a folder."""
    for module, _, _, sub, command in all_commands():
        spec = cli.describe(command, sub)
        assert not OLD_NAMES & set(spec.params), (module, sub)
        for name, p in spec.params.items():
            if name in cli.VOCABULARY and name not in ("model", "weights", "layers", "checkpoints", "channels"):
                assert _base(p.kind) == _base(cli.VOCABULARY[name][0]), (module, sub, name, p.kind)
            if name == "out":
                assert p.kind == "folder", (module, sub)
            if name == "channels":  # a selection, layer-qualified where several layers are meant
                assert p.kind == ("channels" if sub not in ("temporal", "prepost") else "layer channels")
        if "checkpoint" in spec.params:
            assert "run" in spec.params


def kind_base(kind):
    """What a flag's value is, whatever range a command allows: int / number for numeric kinds (a command may
    narrow the bounds), the set of options for a choice, "channels" for a channel selection (layer-qualified
    `L:0:8` where the command has no --layer), else the kind itself."""
    head = kind.split()[0]
    if head in ("int", "number") and kind != "int list":
        return head
    if "|" in kind:
        return "choice of " + ",".join(sorted(kind.split("|")))
    return "channels" if kind == "layer channels" else kind


def value_forms(help_text):
    """The forms a help text says a free-text value takes (`[what: ]A | B | C`, before any ';' or '(' remark),
    or None."""
    head = re.split(r"[;(]", help_text, maxsplit=1)[0]
    if "|" not in head:
        return None
    forms = [f.strip().rstrip(".,").lower() for f in head.split("|")]
    forms[0] = forms[0].rsplit(": ", 1)[-1]  # "the classifier's weights: imagenet" -> "imagenet"
    return {f for f in forms if f}


def test_one_meaning_per_flag_name():
    """One flag name, one meaning: over every command that takes a name (cli_entries.all_commands), (1) its
    value is of one kind (kind_base), and (2) where a help text enumerates the forms the value takes
    (`imagenet | random | a weights file`; free text, whose syntax no kind checks), each is a form the
    vocabulary gives that name (cli.VOCABULARY), or, for a name outside it, a form of the command that
    enumerates the most. Two commands meaning two things
    by one name (--method: linear|integrated vs pixels|activations; --weights: one weights file vs loose
    checkpoint files) fail (1); a help text promising another value fails (2)."""
    uses = {}
    for module, _, _, sub, command in all_commands():
        for name, p in cli.describe(command, sub).params.items():
            uses.setdefault(name, []).append((f"{module} {sub}", p))
    problems = []
    for name, takers in sorted(uses.items()):
        bases = {kind_base(p.kind) for _, p in takers}
        if name in cli.VOCABULARY:
            bases.add(kind_base(cli.VOCABULARY[name][0]))
        if len(bases) > 1:
            problems.append(f"--{name}: kinds {sorted(bases)} in {[(w, p.kind) for w, p in takers]}")
        enumerated = [(w, value_forms(p.doc)) for w, p in takers if p.kind == "str" and value_forms(p.doc)]
        allowed = value_forms(cli.VOCABULARY[name][1]) if name in cli.VOCABULARY else None
        if allowed is None and enumerated:
            allowed = max((f for _, f in enumerated), key=len)
        for where, forms in enumerated:
            if not forms <= allowed:
                problems.append(f"--{name} in {where}: forms {sorted(forms - allowed)} are not {sorted(allowed)}")
    assert not problems, "\n".join(problems)


def test_redundancy_compare_was_method(capsys):
    """analyze redundancy's --method (what is compared) is --compare: --method is attribution's (how it is
    computed). The old spelling still works for redundancy, with a note."""
    from lucidtl.analyze import main

    main(["redundancy", "--images", ".", "--method", "activations", "--dry-run"])
    cap = capsys.readouterr()
    assert "note: --method is now --compare" in cap.err and "--compare = activations" in cap.out
    main(["attribution", "--method", "integrated", "--dry-run"])
    cap = capsys.readouterr()
    assert "--method = integrated" in cap.out and "note" not in cap.err


def test_readme_flag_table_has_one_row_per_concept():
    text = open(os.path.join(ROOT, "docs", "guide", "command-line.md"), encoding="utf-8").read()  # was README's
    table = text.split("**One vocabulary.**", 1)[1].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    flags = [re.findall(r"`(--[a-z-]+)", row.split("|")[1]) for row in rows]
    names = [f[2:].replace("-", "_") for fl in flags for f in fl]
    assert len(names) == len(set(names))  # one row per concept
    documented = set(names)
    for name in cli.VOCABULARY:
        assert name in documented, name
    # the documented command lines use only these and command-specific flags; never an old spelling
    for path, line in documented_commands():
        for old in ("--batch ", "--lr ", "--data ", "--max_images", "--embed_layer", "--num_classes", "--iterations"):
            assert old not in line + " " or line.startswith("python -m lucidtl.train"), (old, path, line)


# ---- documented lines: README.md and every docs/ page -------------------------------------------------

def documented_files():
    """README.md, then every Markdown page of the documentation site (docs/**/*.md), as paths from the root."""
    pages = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    return ["README.md"] + pages


def documented_commands():
    """(file, line) for every `python -m lucidtl...` command line of the code blocks of README.md and of every
    docs/ page (\\ continuations joined, comments, environment prefixes and `&` dropped, shell variables given
    a value), and of their inline code that is a whole command; a line shown on several pages counts once."""
    found = {}
    for path in documented_files():
        text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        lines = []
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                m = re.search(r"python -m lucidtl\.\S+.*", line)
                if not m:
                    continue
                cmd = re.split(r"\s+#", m.group(0))[0].strip().rstrip("&").strip()
                cmd = cmd.replace("${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}", "0/16").replace("$i/4", "0/4")
                lines.append(cmd)
        text_inline = re.findall(r"`(python -m lucidtl\.[^`]*)`", text)
        lines += [t.replace("$i/2", "0/2") for t in text_inline if "..." not in t and "|" not in t
                  and "{" not in t and " --" in t]
        for line in lines:
            if line.split()[2].split(".")[1] in MODULES:
                found.setdefault(line, path)
    return [(path, line) for line, path in found.items()]


def readme_commands():
    """The command lines of documented_commands(), without their files."""
    return [line for _, line in documented_commands()]


def _prepare_inputs(argv, spec, root):
    """Create what the documented line reads (run folders, files) in the scratch folder, by the flags' kinds."""
    values = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and "=" not in argv[i] and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            values[argv[i][2:].replace("-", "_")] = argv[i + 1]
            i += 2
        else:
            i += 1
    for name, value in values.items():
        kind = spec.params[name].kind if name in spec.params else ""
        paths = value.split(",")
        if kind == "run":
            for p in paths:
                os.makedirs(os.path.join(root, p), exist_ok=True)
        elif kind in ("file", "files", "weights"):
            for p in paths:
                if kind == "weights" and p in ("imagenet", "random"):
                    continue
                os.makedirs(os.path.join(root, os.path.dirname(p) or "."), exist_ok=True)
                open(os.path.join(root, p), "a").close()
        elif kind == "dataset" and value.startswith("folder:"):
            os.makedirs(os.path.join(root, value[len("folder:"):]), exist_ok=True)


def test_readme_has_command_lines_for_every_command():
    lines = readme_commands()
    assert len(lines) >= 35
    files = {path for path, _ in documented_commands()}
    assert "README.md" in files and "docs/guide/render.md" in files and "docs/guide/atlas.md" in files
    for module in MODULES:
        assert any(line.startswith(f"python -m lucidtl.{module}") for line in lines), module


def test_every_readme_command_line_is_valid(tmp_path, capsys, monkeypatch):
    """Each documented line (README.md and docs/), exactly as written (plus --dry-run): its sub-command and
    flags exist and its values parse; nothing is written."""
    monkeypatch.chdir(tmp_path)
    mains = {module: entry(module) for module in MODULES}
    for path, line in documented_commands():
        words = shlex.split(line)
        module = words[2].split(".")[1]
        main, commands = mains[module]
        argv = words[3:]
        sub = argv[0] if argv and argv[0] in commands else next(iter(commands)) if len(commands) == 1 else None
        sub = sub or {"render": "render", "figures": "temporal", "atlas": "render", "analyze": "similarity",
                      "stylegan": "ascent", "export": "renderer"}[module]
        _prepare_inputs(argv, cli.describe(commands[sub], sub), tmp_path)
        before = sorted(os.listdir(tmp_path))
        try:
            main(argv + ["--dry-run"])
        except SystemExit as e:
            pytest.fail(f"{path}: {line}: exit {e.code}: {capsys.readouterr().err.strip()}")
        out = capsys.readouterr().out
        assert "the command line is valid" in out, (path, line)
        assert sorted(os.listdir(tmp_path)) == before, (path, line)  # a dry run writes nothing


def test_cheap_readme_lines_run_for_real(tmp_path, capsys, monkeypatch):
    """Documented lines (README.md and docs/) that need no download or training run for real, shrunk by
    appending small sizes."""
    from lucidtl import analyze, render
    from lucidtl.analysis import tables

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LUCIDTL_ALLOW_SLOW_PRECISION", "1")  # the --precision bfloat16 line, on any CPU
    shrink = ["--size", "16", "--steps", "1", "--weights", "random", "--noprogress"]
    ran = 0
    for path, line in documented_commands():
        words = shlex.split(line)
        if words[2] == "lucidtl.render" and "--run" not in words and "--model" not in words:  # no downloads
            argv = words[3:] + ([] if words[3:4] == ["layers"] else shrink)
            if "--thresholds" in words:
                argv += ["--thresholds", "1"]
            os.makedirs(tmp_path / str(ran))
            monkeypatch.chdir(tmp_path / str(ran))  # each line its own folder: the default --out is ./out
            render.main(argv)
            printed = capsys.readouterr().out
            assert ("wrote" in printed) or ("Mixed_4c" in printed), (path, line)
            ran += 1
    assert ran >= 5  # the render lines of the README's first sections
    # analyze table, as in the README: two similarity CSVs labelled pets and flowers
    rows = [{"run": "x", "iteration": it, "reference": 0, "layer": "Mixed_4c", "pwsm_theta": 0.1 * it, "procrustes_norm": 0.01 * it,
             "cka": 1 - 0.01 * it} for it in (0, 10, 30)]
    monkeypatch.chdir(tmp_path)
    for name in ("pets", "flowers"):
        tables.write_csv(rows, f"analysis/{name}/similarity.csv")
    line = next(w for w in readme_commands() if " table " in w)
    analyze.main(shlex.split(line)[3:])
    table = tables.read_csv("analysis/reusability.csv")
    assert sorted((t["run"], t["layer"]) for t in table) == [("flowers", "Mixed_4c"), ("pets", "Mixed_4c")]
    assert all(t["n"] == 2 and t["cka_mean"] == pytest.approx(0.8) for t in table)  # (0.9 + 0.7) / 2


# ---- --run/--checkpoint -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def head_run(tmp_path_factory):
    """A run folder as lucidtl.train writes it: run.json (backbone + a 3-class head) and weights-only
    checkpoints at iterations 0, 10 and 30."""
    from test_analysis import make_head_run

    root = tmp_path_factory.mktemp("headrun")
    return make_head_run(root / "run", scales=(0.0, 0.3, 0.6))


def test_render_one_checkpoint_of_a_run(head_run, tmp_path, capsys):
    """render --run R --checkpoint N renders the run's own architecture (head included) at iteration N."""
    from lucidtl import imageio, render
    from lucidtl.train.run import load_checkpoint

    render.main(["layers", "--run", str(head_run)])
    assert "predictions" in capsys.readouterr().out  # the head is there
    args = ["--run", str(head_run), "--layer", "mixed", "--channels", "0:2", "--size", "16", "--steps", "2",
            "--noprogress"]
    for it in (10, 30):
        render.main([*args, "--checkpoint", str(it), "--out", str(tmp_path / str(it))])
    render.main([*args, "--out", str(tmp_path / "last")])  # default: the last checkpoint
    rec = json.loads((tmp_path / "10" / "mixed_render.json").read_text())
    assert rec["weights"] == f"{head_run} iteration 10" and not rec["random_weights"]
    a, b, last = (imageio.load_png(str(tmp_path / d / "mixed_0001_2.png")) for d in ("10", "30", "last"))
    assert np.abs(a.astype(int) - b).max() > 0 and np.array_equal(b, last)
    # the same render through the library on load_checkpoint(run, 10) gives the same pixels
    from lucidtl.optvis.render import render_vis
    from lucidtl.render import channel_objective, make_param

    imgs = render_vis(load_checkpoint(str(head_run), 10), channel_objective("mixed", [0, 1]),
                      param_f=make_param("fft", 16, 2), thresholds=(2,), seed=0, verbose=False)
    np.testing.assert_array_equal(np.rint(a * 255).astype(np.uint8), np.rint(imgs[0][1] * 255).astype(np.uint8))
    with pytest.raises(SystemExit) as e:
        render.main([*args, "--checkpoint", "20", "--out", str(tmp_path / "x")])
    assert "no checkpoint at iteration 20; saved: 0, 10, 30" in one_error_line(e.value.code, capsys.readouterr())
    assert not (tmp_path / "x").exists()


def test_gpu_memory_growth_still_runs_when_tensorflow_comes_later():
    """Importing lucidtl no longer imports TensorFlow; the memory-growth setting runs right after TensorFlow
    is first imported, whoever imports it."""
    code = ("import sys, lucidtl\n"
            "assert 'tensorflow' not in sys.modules\n"
            "calls = []\n"
            "lucidtl._enable_memory_growth = lambda: calls.append('tensorflow' in sys.modules)\n"
            "import tensorflow\n"
            "import keras\n"
            "print('CALLS', calls)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "CALLS [True]" in proc.stdout, proc.stderr[-2000:]
