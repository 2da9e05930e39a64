"""Data: sinusoid tasks, image datasets and their on-disk formats, episode samplers."""
