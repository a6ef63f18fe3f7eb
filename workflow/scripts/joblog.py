"""A script job's whole output goes to its rule's ``log:`` file: ``redirect_to_log(snakemake.log[0])``.

Snakemake runs a ``script:`` in a child process whose stdout and stderr are Snakemake's own (the
terminal, or a cluster job's output file), while a failed job's message says "check log file(s)
for error details". Each script therefore calls this first: file descriptors 1 and 2 are pointed
at the log, so everything the job writes lands there (print output, ``logging`` records, Python
warnings, messages of C libraries and, when the job fails, Python's traceback). Shell rules do the
same with ``> {log} 2>&1``. The log is truncated first, as the shell's ``>`` does, so a rerun's log
holds that run only.
"""

import logging
import os
import sys

# Time, level and logger name: enough to follow a long job and to tell the library's records apart.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redirect_to_log(path: str, level: int = logging.INFO) -> None:
    """Send this process's stdout, stderr and ``logging`` (at ``level`` and above) to ``path``."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"path must name the job's log file, got {path!r}")
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # each line reaches the log as it is written
    logging.basicConfig(stream=sys.stderr, level=level, format=LOG_FORMAT, force=True)
