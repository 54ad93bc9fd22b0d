"""The command line end to end: help, training, saving, and user mistakes without tracebacks."""

import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from openpyxl import load_workbook

from cfxl.cli import cli

RATINGS = "userId,movieId,rating,timestamp\n" + "\n".join(
    f"{u},{m},{(u * 7 + m * 3) % 9 / 2 + 0.5},0" for u in range(1, 21) for m in range(1, 16)
    if (u + m) % 3) + "\n"


@pytest.fixture
def ratings(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, prefix + (name,))


def test_every_command_explains_itself_with_an_example():
    for path, cmd in all_commands(cli):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert cmd.help and len(cmd.help) > 40, path
        if not hasattr(cmd, "commands"):
            assert "Example:" in result.output, path


def test_train_prints_a_table_per_epoch_and_saves(ratings, tmp_path):
    out = tmp_path / "m.pt"
    result = run("train", ratings, "--epochs", 3, "--bs", 16, "--factors", 3, "-q", "-o", out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["epoch", "train_loss"])
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["1", "2", "3"]
    assert f"saved {out}" in result.output
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["n_factors"] == 3 and len(ckpt["history"]["epoch"]) == 3


def test_train_refuses_to_overwrite_without_force(ratings, tmp_path):
    out = tmp_path / "m.pt"
    out.write_text("precious")
    result = CliRunner().invoke(cli, ["train", str(ratings), "-q", "-o", str(out)])
    assert result.exit_code == 1
    assert "exists; pass --force" in result.output
    assert out.read_text() == "precious"


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty"),
    ("userId,movieId,rating\n1,2,five\n", "line 2"),
    ("userId,movieId,rating\n1,2,9.5\n", "line 2"),
])
def test_bad_input_is_one_line_with_exit_1(tmp_path, content, message):
    path = tmp_path / "ratings.csv"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "cfxl", "train", str(path), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cfxl: error: ") and str(path) in err[0]
    assert message in err[0].lower()


def test_bad_option_is_a_usage_error(ratings):
    result = CliRunner().invoke(cli, ["train", str(ratings), "--schedule", "fast"])
    assert result.exit_code == 1 and "bad schedule 'fast'" in result.output
    result = CliRunner().invoke(cli, ["train", str(ratings), "--model", "svd"])
    assert result.exit_code == 2


def test_data_info(ratings):
    result = run("data", "info", ratings)
    assert result.exit_code == 0
    assert "ratings:  200" in result.output and "users:    20" in result.output


def test_duplicates_are_reported(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS + "1,1,5.0,0\n2,2,5.0,0\n")
    result = CliRunner().invoke(cli, ["data", "info", str(path)])
    assert result.exit_code == 0
    assert "dropped 2 duplicate (user, movie) ratings" in result.output


def test_demo_end_to_end_quickly(tmp_path):
    result = run("demo", "--quick", "-q", "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    table = result.output.split("Validation after training")[1]
    for name in ("EmbeddingDot", "EmbeddingDotBias", "EmbeddingNet"):
        assert name in table
    assert "val RMSE" in table
    assert (tmp_path / "collab_filter.xlsx").exists()


def test_export_trains_writes_and_refuses_to_overwrite(tmp_path):
    book, tables = tmp_path / "book.xlsx", tmp_path / "tables"
    args = ["export", "--bs", 4096, "--epochs", 1, "--factors", 4, "-q", "-o", book]
    result = run(*args, "--csv-dir", tables)
    assert result.exit_code == 0, result.output
    assert f"wrote {book}" in result.output
    names = load_workbook(book, read_only=True).sheetnames
    assert names[:8] == ["dotprod", "dotprod_trained", "bias", "bias_trained", "movielens_emb",
                         "movielens_1hot", "nn", "tensors"]
    assert {"users", "movies", "predictions", "epochs", "bias_rank", "pca", "config"} <= set(names)
    assert {p.name for p in tables.iterdir()} >= {"users.csv", "movies.csv", "predictions.csv"}
    before = book.read_bytes()
    again = CliRunner().invoke(cli, [str(a) for a in args])
    assert again.exit_code == 1 and "exists; pass --force" in again.output
    assert book.read_bytes() == before


def test_export_from_a_saved_model(ratings, tmp_path):
    model, book = tmp_path / "m.pt", tmp_path / "m.xlsx"
    assert run("train", ratings, "--epochs", 1, "--factors", 3, "-q", "-o", model).exit_code == 0
    result = run("export", model, "-q", "-o", book, "--slice-users", 5, "--slice-movies", 4)
    assert result.exit_code == 0, result.output
    wb = load_workbook(book, read_only=True)
    config = {r[0]: r[1] for r in wb["config"].iter_rows(min_row=3, values_only=True)}
    assert config["n_factors"] == 3 and config["data_file"] == str(ratings)
    ratings.unlink()
    gone = CliRunner().invoke(cli, ["export", str(model), "-q", "-o", str(tmp_path / "x.xlsx")])
    assert gone.exit_code == 1 and "is gone" in gone.output


def test_export_into_a_missing_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--epochs", 1, "--bs", 4096, "-q",
                                      "-o", str(tmp_path / "no" / "book.xlsx")])
    assert result.exit_code == 1 and "no such folder" in result.output


def test_graddesc_writes_the_optimizer_workbook(tmp_path):
    book = tmp_path / "g.xlsx"
    result = run("graddesc", "--steps", 2, "--rules", "lesson", "-o", book)
    assert result.exit_code == 0, result.output
    names = load_workbook(book, read_only=True).sheetnames
    assert names[:10] == ["Intro", "data", "basic SGD", "momentum", "adagrad", "rmsprop", "adam",
                          "adamw", "adam_ann", "eve"]
    assert {"gradients", "cf_sgd", "cf_momentum", "cf_adam", "cf_adamw"} <= set(names)
    traced = tmp_path / "t.xlsx"
    result = run("graddesc", "--steps", 2, "--trace-users", "1,2", "--trace-movies", "1", "-o",
                 traced)
    assert result.exit_code == 0, result.output
    names = [r[0] for r in load_workbook(traced, read_only=True)["cf_sgd"].iter_rows(
        min_row=6, max_col=1, values_only=True) if r[0]]
    # two users and one movie, each with 5 factors and a bias; header and step labels aside
    elements = {n for n in names if "[" in n}
    assert len(elements) == 2 * (5 + 1) + (5 + 1)
    assert {n.split("[")[0] for n in elements} == {"u_weight", "u_bias", "i_weight", "i_bias"}
    bad = CliRunner().invoke(cli, ["graddesc", "--trace-users", "999999", "-o",
                                   str(tmp_path / "u.xlsx")])
    assert bad.exit_code == 1 and "999999" in bad.output


@pytest.mark.parametrize("args, message", [
    (["graddesc", "--steps", 0], "--steps must be at least 1, not 0"),
    (["export", "--slice-users", 0], "--slice-users (slice_users) must be at least 1, not 0"),
    (["export", "--slice-movies", -2], "--slice-movies (slice_movies) must be at least 1, not -2"),
    (["export", "--slice-factors", 0], "--slice-factors (slice_factors) must be at least 1, not 0"),
    (["export", "--betas", "1.5,0.999"], "betas must each be in [0, 1), not 1.5,0.999"),
    (["export", "--momentum", -1], "momentum must be a number >= 0, not -1.0"),
    (["export", "--wd", -0.1], "--wd (weight_decay) must be a number >= 0, not -0.1"),
    (["export", "--eps", -1], "eps must be a positive number, not -1.0"),
    (["export", "--device", "banana"],
     "device must be auto, cpu, cuda, cuda:N or mps, not 'banana'"),
    (["export", "--epochs", 0], "--epochs must be at least 1, not 0"),
    (["unroll", "--steps", 0], "--steps must be at least 1, not 0"),
    (["unroll", "--factors", 0], "--factors must be at least 1, not 0"),
    (["unroll", "--lr", 0], "lr must be a positive number, not 0.0"),
    (["unroll", "--betas", "0.9,1"], "betas must each be in [0, 1), not 0.9,1.0"),
    (["unroll", "--wd", -1], "--wd (weight_decay) must be a number >= 0, not -1.0"),
])
def test_settings_are_checked_before_any_work(no_work, tmp_path, args, message):
    result = CliRunner().invoke(cli, [str(a) for a in args] + ["-o", str(tmp_path / "b.xlsx")])
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {message}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["train", "--momentum", -1, "-q"],
                                     ["train", "--device", "cuda:x"]])
def test_train_checks_its_settings_before_reading(no_work, command):
    result = run(*command)
    assert result.exit_code == 1 and result.output.startswith("cfxl: error: ")
    assert len(result.output.splitlines()) == 1


@pytest.mark.parametrize("output, message", [
    ("b.csv", "{tmp}/b.csv: the name needs the suffix .xlsx or .xlsm"),
    ("nowhere/b.xlsx", "{tmp}/nowhere: no such folder"),
    ("b-1.xlsm", "b-1.xlsm: its buttons import b-1.py, so the name must be a Python module "
                 "name (letters, digits and _, not starting with a digit)"),
    ("taken.xlsm", "{tmp}/taken.pt exists; pass --force to overwrite it"),
])
def test_every_output_is_checked_before_any_work(no_work, tmp_path, output, message):
    (tmp_path / "taken.pt").write_text("a model")
    result = run("export", "-o", tmp_path / output, "--csv-dir", tmp_path / "tables")
    assert (result.exit_code, result.output) == (1, f"cfxl: error: {message.format(tmp=tmp_path)}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.pt"]


def test_the_csv_tables_are_not_overwritten_unasked(no_work, tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "users.csv").write_text("mine")
    result = run("export", "-o", tmp_path / "b.xlsx", "--csv-dir", tmp_path / "tables")
    assert result.output == f"cfxl: error: {tmp_path}/tables/users.csv exists; pass --force to " \
                            "overwrite it\n"
    (tmp_path / "file").write_text("")
    result = run("export", "-o", tmp_path / "b.xlsx", "--csv-dir", tmp_path / "file")
    assert result.output == f"cfxl: error: {tmp_path}/file is a file, not a folder\n"


def test_train_saves_only_a_pt_file(no_work, tmp_path):
    result = run("train", "-o", tmp_path / "m.model")
    assert result.output == f"cfxl: error: {tmp_path}/m.model: the name needs the suffix .pt\n"


def test_snapshot_writes_its_file_once_unless_forced(tmp_path):
    from cfxl.workbooks import write_workbook

    book = write_workbook(tmp_path / "b.xlsx", lambda b: b.sheet("s", "a note"))
    out = tmp_path / "b.txt"
    assert run("snapshot", book, "-o", out).output == f"saved {out}\n"
    assert out.read_text().startswith("# cfxl snapshot v1")
    again = run("snapshot", book, "-o", out)
    assert (again.exit_code, again.output) == (1, f"cfxl: error: {out} exists; pass --force to "
                                                  "overwrite it\n")
    assert run("snapshot", book, "-o", out, "--force").exit_code == 0
