"""``jobqueue web``: a read-mostly web UI for queues, jobs, the DLQ, workers and scaling.

Starlette + Jinja2 templates rendered on the server; htmx (progressive
enhancement) and uPlot (charts) are vendored under ``static/vendor`` so nothing
is fetched from a CDN at run time. Redis is read through ``jobqueue_web.reads``
only, the Kubernetes API through ``jobqueue_web.kube`` only.
"""
