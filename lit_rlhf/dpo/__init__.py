"""DPO: preference pairs from the policy and the reward model, tokenised pair batches with cached reference log-probs."""
