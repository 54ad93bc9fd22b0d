"""The main job: the lesson's three experiments on the embedded sample, and the example
workbooks written from them (`cfxl demo`; `workbooks/` in the repo holds its output)."""

from __future__ import annotations

from pathlib import Path

from cfxl.data import Ratings
from cfxl.train import Config, Trained, fit

# The lesson's experiments (lesson-workbooks.md §1.7): SGD with momentum for the dot models,
# Adam for the net, batch size 64, the lr dropped from 0.1 to 0.01 after three epochs.
LESSON_RUNS = {
    "EmbeddingDot": dict(model="dot", opt="momentum", momentum=0.9, wd=1e-5,
                         schedule="3@0.1,3@0.01", bs=64),
    "EmbeddingDotBias": dict(model="dotbias", opt="momentum", momentum=0.9, wd=2e-4,
                             schedule="3@0.1,3@0.01", bs=64),
    "EmbeddingNet": dict(model="net", opt="adam", lr=1e-3, wd=1e-5, epochs=6, bs=64),
}
WORKBOOK_MODEL = "EmbeddingDotBias"  # the model behind the collab workbook's whole-model sheets


def lesson_config(name: str, *, quick: bool = False) -> Config:
    """The lesson's settings for one run; quick keeps one epoch per stage."""
    settings = LESSON_RUNS[name]
    config = Config(**settings)
    if not quick:
        return config
    stages = ",".join(f"1@{lr}" for _, lr in config.stages) if config.stages else config.schedule
    return Config(**{**settings, "epochs": 1, "schedule": stages})


def run_lesson(data: Ratings, *, quick: bool = False, progress=None, on_start=None,
               on_epoch=None) -> dict[str, Trained]:
    """Train the lesson's three models on `data`, in the lesson's order."""
    models = {}
    for name in LESSON_RUNS:
        config = lesson_config(name, quick=quick)
        if on_start is not None:
            on_start(name, config)
        models[name] = fit(config, data, progress=progress, on_epoch=on_epoch)
    return models


def write_workbooks(trained: Trained, data: Ratings, out_dir) -> list[Path]:
    """The example workbooks of the demo, rewritten in out_dir (they are cfxl's own files)."""
    from cfxl.export import export_collab, export_graddesc, export_train_sheet

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [export_collab(out_dir / "collab_filter.xlsx", trained, data, force=True),
            export_graddesc(out_dir / "graddesc.xlsx", data, force=True),
            export_train_sheet(out_dir / "train.xlsx", data, force=True)]
