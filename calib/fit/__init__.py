"""File-level fits: a dataset file in, a preset out (pulse response, PCM, many chips)."""
