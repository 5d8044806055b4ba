"""DPO: pairs from the policy and the reward model (or a file), pair batches with cached reference log-probs."""
