"""jobqueue_operator."""
