"""``irprune memory``: registered arch and BasicSR YAML, plot, JSON, argument errors."""
from __future__ import annotations

import argparse
import json

import pytest

from ir_prune_plugin.commands import memory as cmd
from ir_prune_plugin.memory import estimate_peak_memory


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="irprune")
    cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["memory", *argv])


def test_registered_arch_with_plot_and_json(tmp_path, capsys):
    png, out = tmp_path / "mem.png", tmp_path / "mem.json"
    args = parse(["sid_unet", "--size", "32x48", "--arch-args", '{"width": 0.25}', "--top", "2",
                  "--plot", str(png), "--json", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    from ir_prune_plugin.archs import build_arch
    expected = estimate_peak_memory(build_arch("sid_unet", width=0.25), (1, 3, 32, 48)).peak_bytes
    assert f"({expected} bytes)" in text and "top 2 pruning groups" in text and "live at the peak" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(out.read_text())
    assert data["peak_bytes"] == expected and data["input_shape"] == [1, 3, 32, 48]


def test_basicsr_yaml_network_g_and_measure(tmp_path, capsys):
    yml = tmp_path / "edsr.yml"
    yml.write_text("network_g:\n  type: EDSR\n  num_in_ch: 3\n  num_out_ch: 3\n  num_feat: 8\n"
                   "  num_block: 1\n  upscale: 2\n")
    args = parse([str(yml), "--size", "12x16", "--measure", "--json", str(tmp_path / "r.json")])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["arch"] == "edsr" and data["measured_scheduled"] == data["peak_bytes"]
    assert data["measured_eager"] >= data["measured_scheduled"] and "eager (as written)" in text


@pytest.mark.parametrize("argv,match", [
    (["sid_unet", "--size", "2048"], "HEIGHTxWIDTH"),
    (["sid_unet", "--size", "0x16"], "HEIGHTxWIDTH"),
    (["sid_unet", "--arch-args", "[1]"], "JSON object"),
    (["sid_unet", "--arch-args", "{bad"], "JSON object"),
    (["sid_unet", "--size", "16x16", "--plot", "x.jpg"], ".png"),
])
def test_bad_arguments_stop_argparse(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_unknown_arch_and_size_order():
    args = parse(["nosuchnet", "--size", "16x16"])
    with pytest.raises(ValueError, match="unknown arch"):
        args.func(args)
    assert parse(["sid_unet", "--size", "128x512"]).size == (128, 512)  # HEIGHTxWIDTH


def test_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        cmd.build_model(str(tmp_path / "missing.yml"), {})
    bad = tmp_path / "bad.yml"
    bad.write_text("network_g:\n  type: NoSuchNet\n")
    with pytest.raises(ValueError, match="NoSuchNet"):
        cmd.build_model(str(bad), {})
