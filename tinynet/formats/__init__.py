"""Readers and writers for weight files. Each reader returns plain numpy arrays and never executes
code from the file; each raises tinynet.errors.WeightsError with a one-line reason when a file is
truncated, inconsistent or hostile."""
