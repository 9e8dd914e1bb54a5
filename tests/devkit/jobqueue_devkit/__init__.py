"""Development tools for jobqueue-operator: never shipped in a wheel or an image.

They stand in for what a real cluster gives (a control plane built from Go
modules, a Redis server, a kubelet-like pod runner) so that tests and the demo
run on a machine with no container runtime.
"""
