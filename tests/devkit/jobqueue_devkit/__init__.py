"""jobqueue_devkit."""
