"""Training metrics: the JSONL log every run writes, the optional TensorBoard sink, and `mirai plot`."""
