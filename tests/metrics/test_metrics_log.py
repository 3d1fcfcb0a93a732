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
