"""The process: device and precision, CPU threads, torchrun/distributed, progress bars. Imports nothing of ours
above mirai_cli.errors, and nothing here at package level (runtime.threads must run before torch loads)."""
