"""``python -m jobqueue_simulator simulate --spec ... --trace ...``."""

from jobqueue_simulator.cli import app

app(prog_name="python -m jobqueue_simulator")
