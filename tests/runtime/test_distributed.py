"""The process group of a job under torchrun: joined for the job, destroyed when it ends (an NCCL process that
exits without destroy_process_group warns and can hang; gloo is silent, so the test looks inside)."""

import json
from pathlib import Path

import pytest
from clirun import torchrun_script
from mirai_testdata import write_store_info

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_train_sample_and_encode_leave_the_process_group_they_joined(tiny_store, tmp_path):
    torchrun_script(HERE / "jobs_worker.py", write_store_info(tiny_store, tmp_path / "store.json"), tmp_path)
    record = json.loads((tmp_path / "record.json").read_text())
    jobs = {"train": True, "sample": True, "encode": True}
    assert record["inside"] == jobs  # each job ran in the group (the next one joins it again)
    assert record["after"] == {job: False for job in jobs}  # and destroyed it when it ended
