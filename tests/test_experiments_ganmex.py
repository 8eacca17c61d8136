"""experiments/ganmex_images.py on tiny settings (--quick, written to a temporary
folder): it runs end to end on real data (Fashion-MNIST only where Debian's package is
installed) and what holds whatever the data does: every target-class curve starts at
the input's margin and, for one reference, ends at the same fully replaced image's
margin whichever method ranked the pixels; the randomisation's first row is the
original model (SSIM 1); the report, its table and both figures are written."""

from __future__ import annotations

import json

import pytest
import torch

from experiments import ganmex_images


def test_quick_run(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert ganmex_images.main(["--quick", "--quiet", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "Target-class curves" in capsys.readouterr().out
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {
        "ganmex_images.json",
        "ganmex_images.md",
        "ganmex_images.png",
        "ganmex_images_maps.png",
    }
    report = json.loads((tmp_path / "ganmex_images.json").read_text())
    for rep in report["sets"]:
        assert set(rep["validity"]) == {*ganmex_images.BASELINES, "real c (fair reference)"}
        curves = rep["target_class_curves"]
        starts = {round(c["margin"][0], 5) for c in curves.values()}
        assert len(starts) == 1
        for ref in ganmex_images.REFERENCES[1:]:  # shared references: one end point
            ends = {round(c["margin"][-1], 4) for k, c in curves.items() if k.endswith(ref)}
            assert len(ends) == 1, ref
        for s in rep["cascading_randomization"].values():
            assert s["ssim"][0] == pytest.approx(1.0)
        assert rep["speed"]["baselines_per_second_batch_256"] > 0
