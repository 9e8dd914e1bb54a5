"""jobqueue_protocol."""
