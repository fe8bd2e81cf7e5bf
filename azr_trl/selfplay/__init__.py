"""The self-play core: the task buffer and the task draws from it, rewards, TRR++ advantages, intrinsic rewards, the
GRPO batch and step metrics."""
