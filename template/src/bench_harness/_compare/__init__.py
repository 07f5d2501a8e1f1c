"""`make compare`: two experiments side by side: what changed, what moved, whether it is real."""
