"""metrics.jsonl and the optional sink (TensorBoard) get the same records; non-finite values become null."""

import math

from mirai_cli.metrics.log import MetricsLog, read_metrics


class ListSink:
    def __init__(self):
        self.records = []

    def write(self, record):
        self.records.append(record)


def test_every_record_reaches_the_sink_as_written(tmp_path):
    sink = ListSink()
    log = MetricsLog(tmp_path / "metrics.jsonl", sink=sink)
    log.write({"step": 1, "loss": 2.5})
    log.write({"step": 2, "loss": math.nan})
    assert read_metrics(tmp_path / "metrics.jsonl") == sink.records == [{"step": 1, "loss": 2.5},
                                                                        {"step": 2, "loss": None}]
    MetricsLog(tmp_path / "other.jsonl", enabled=False, sink=sink).write({"step": 3})
    assert len(sink.records) == 2  # a non-main rank writes nothing anywhere


def test_resume_truncation_skips_a_torn_last_line_and_refuses_a_bad_middle_line(tmp_path, capsys):
    """`train --resume` cuts the log at its checkpoint through the same reader as `mirai plot`."""
    import json

    import pytest

    from mirai_cli.errors import MiraiError

    path = tmp_path / "metrics.jsonl"
    good = "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 5)).encode()
    path.write_bytes(good + b'{"step": 5, "lo\xff')  # killed mid-write
    MetricsLog(path).truncate_after(3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    assert "skipped the last line" in capsys.readouterr().err
    path.write_bytes(good + b"7\n" + good)
    with pytest.raises(MiraiError, match=r"metrics.jsonl:5: a JSON int, not an object"):
        MetricsLog(path).truncate_after(3)
    assert path.read_bytes() == good + b"7\n" + good  # nothing rewritten
