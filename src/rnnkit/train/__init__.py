"""One Trainer for every task."""
