"""The self-play core: the task buffer, rewards, TRR++ advantages, intrinsic rewards, the GRPO batch and step metrics."""
