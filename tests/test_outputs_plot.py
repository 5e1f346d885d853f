"""``timeseries.png``: a valid PNG of the expected size, drawn from ``timeseries.jsonl`` alone."""

from __future__ import annotations

import struct
from pathlib import Path

from loadkit.measure.collector import Collector, ProcessSample
from loadkit.results.plot import DPI, HEIGHT_IN, WIDTH_IN, main, plot_timeseries
from loadkit.results.timeseries import JsonlWriter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert (length, chunk) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def a_spike_run(path: Path) -> Path:
    """60 s: 10 users, a spike to 50 at 20-40 s with slower, partly failing responses."""
    series = Collector()
    series.start(run_id=None, start_epoch_s=1_700_000_000.5, start_mono_s=0.0)
    for second in range(60):
        spike = 20 <= second < 40
        users = 50 if spike else 10
        series.sample_users(users, 1_700_000_000 + second)
        rss = ProcessSample("local", 80_000_000 + second * 10_000)
        series.sample_process("local", rss, 1_700_000_000 + second)
        for i in range(users * 5):
            now = second + i / (users * 5)
            slow = 4.0 if spike else 1.0
            series.record("GET", "/health", (5 + i % 20) * slow, False, now)
            if i % 3 == 0:
                series.record("POST", "/api/calls", (20 + i % 50) * slow, spike and i % 7 == 0, now)
    writer = JsonlWriter(path)
    writer.write(series.pop_all())
    writer.close()
    return path


def test_plot_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    jsonl = a_spike_run(tmp_path / "health-spike-20260101-120000" / "timeseries.jsonl")
    png = plot_timeseries(jsonl, jsonl.with_suffix(".png"))
    assert png == jsonl.with_suffix(".png")
    assert png_size(png) == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
    assert png.stat().st_size > 20_000  # three panels of lines and text, not a blank image


def test_plot_of_a_run_without_requests(tmp_path: Path) -> None:
    jsonl = tmp_path / "timeseries.jsonl"
    jsonl.write_text("")
    png = plot_timeseries(jsonl, tmp_path / "out" / "plot.png", title="nothing ran")
    assert png_size(png) == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))


def test_plot_command_line(tmp_path: Path, capsys: object) -> None:
    jsonl = a_spike_run(tmp_path / "timeseries.jsonl")
    assert main([str(jsonl)]) == 0
    assert png_size(tmp_path / "timeseries.png")[0] > 0
    assert main([]) == 2
