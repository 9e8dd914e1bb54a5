"""jobqueue_worker."""
