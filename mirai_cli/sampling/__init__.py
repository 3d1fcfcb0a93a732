"""The sampling job: a GPT checkpoint + a VQ tokenizer -> PNGs, an ADM-style samples.npz and a grid PNG."""

from mirai_cli.sampling.job import SampleJob, SampleResult, run_sample_job
from mirai_cli.sampling.plan import class_plan

__all__ = ["SampleJob", "SampleResult", "class_plan", "run_sample_job"]
