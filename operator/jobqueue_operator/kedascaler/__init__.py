"""KEDA external scaler: our queue metrics and scaling policy, served to KEDA over gRPC.

``metadata`` parses a ScaledObject trigger's metadata, ``answers`` turns one
Redis poll into KEDA's answers (pure), ``service`` is the gRPC service,
``server`` binds it (TLS optional) and ``cli`` is ``jobqueue-operator
keda-scaler``. Redis is read through ``jobqueue_operator.observe`` only.
"""
