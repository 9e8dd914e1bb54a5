"""``python -m jobqueue_operator.simulator simulate --spec ... --trace ...``."""

from jobqueue_operator.simulator.cli import app

app(prog_name="python -m jobqueue_operator.simulator")
