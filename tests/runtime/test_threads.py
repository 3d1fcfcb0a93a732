"""CPU threads chosen before torch loads: passive OpenMP waiting and a share of the cores when jobs run at
once, the user's settings and --threads win, and the train banner says what was chosen."""

import os
import subprocess
import sys

from mirai_cli.runtime.threads import apply_threads, choose_threads


def test_one_job_keeps_the_defaults():
    choice = choose_threads(["train", "--preset", "tiny"], {}, cpu_count=8)
    assert (choice.threads, choice.wait_policy, choice.why) == (None, None, "one job")


def test_parallel_ablate_jobs_wait_passively_on_their_share_of_the_cores():
    for argv in (["ablate", "--jobs", "4"], ["ablate", "-j", "4"], ["ablate", "--jobs=4", "-a", "k"]):
        choice = choose_threads(argv, {}, cpu_count=8)
        assert (choice.threads, choice.wait_policy) == (2, "PASSIVE"), argv
        assert "4 jobs share 8 cores" in choice.describe()
    # --jobs of another command, or one job, changes nothing
    assert choose_threads(["train", "--jobs", "4"], {}, 8).wait_policy is None
    assert choose_threads(["ablate", "--jobs", "1"], {}, 8).wait_policy is None


def test_torchrun_processes_on_one_machine_share_the_cores():
    choice = choose_threads(["train"], {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}, cpu_count=8)
    assert (choice.threads, choice.wait_policy) == (1, "PASSIVE")


def test_the_users_settings_and_threads_flag_win():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    choice = choose_threads(["ablate", "--jobs", "2"], env, cpu_count=8)
    assert (choice.threads, choice.wait_policy) == (3, "ACTIVE") and "environment" in choice.why
    choice = choose_threads(["--threads", "5", "ablate", "--jobs", "2"], env, cpu_count=8)
    assert choice.threads == 5 and "--threads" in choice.why
    environ = {}
    apply_threads(choose_threads(["--threads", "5", "ablate", "-j", "2"], {}, 8), environ)
    assert environ == {"OMP_NUM_THREADS": "5", "OMP_WAIT_POLICY": "PASSIVE"}


def test_threads_flag_reaches_torch_and_the_banner(tiny_store, tmp_path):
    from mirai_testdata import tiny_overrides

    sets = []
    for item in tiny_overrides(tiny_store, tmp_path / "r", **{"train.duration": 1}):
        sets += ["--set", item]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, "-m", "mirai_cli", "--threads", "1", "train", "--quiet", *sets], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "CPU threads 1, OMP_WAIT_POLICY default (--threads)" in done.stdout, done.stdout
    probe = "import torch; print(torch.get_num_threads())"
    code = f"import sys; sys.argv = ['mirai', '--threads', '1']; from mirai_cli.cli.app import configure_threads; " \
           f"configure_threads(sys.argv[1:]); {probe}"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "1"
