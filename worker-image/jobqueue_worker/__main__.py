"""``python -m jobqueue_worker`` runs the CLI (the image's ENTRYPOINT)."""

from jobqueue_worker.cli import main

main()
