"""A real kubelet runs our images: the node's own evidence, not our logs, is asserted.

User, read-only root and memory limit come from inside the container (`kubectl
exec id`, its cgroup); SIGTERM and the grace period from the container's own
output; networking from what a Pod wrote into a Redis on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobqueue_devkit import node_network
from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.kubelet import NODE_NAME
from jobqueue_devkit.procs import pid_alive
from jobqueue_devkit.realnode import RealNode
from jobqueue_devkit.redis_server import RedisServer

from .pods import apply, exec_in, new_namespace, pod, python_pod, wait_phase

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]

SLEEP_FOREVER = "import time\nwhile True: time.sleep(3600)"


@pytest.fixture(scope="module")
def base_image(real_node: RealNode, docker_base_image: str) -> str:
    return real_node.import_image(docker_base_image)


@pytest.fixture(scope="module")
def bridge_redis(real_node: RealNode) -> Iterator[RedisServer]:
    """A Redis bound on the host's bridge address: the only way Pods can reach it."""
    server = RedisServer(host=real_node.address).start()
    yield server
    server.cleanup()


def test_node_registers_ready_with_our_runtime(real_node: RealNode) -> None:
    assert real_node.plane is not None
    node = json.loads(real_node.plane.kubectl("get", "node", NODE_NAME, "-o", "json"))
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert not node["spec"].get("taints")
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.36.3"
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == real_node.address


def test_pod_runs_as_its_user_with_read_only_root_and_memory_limit(
    real_node: RealNode, base_image: str, tmp_path: Path
) -> None:
    ns = new_namespace(real_node)
    manifest = python_pod(
        ns,
        "locked",
        base_image,
        SLEEP_FOREVER,
        securityContext={"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
        container={
            "securityContext": {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"limits": {"memory": "96Mi", "cpu": "500m"}},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        },
        volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
    )
    apply(real_node, manifest, tmp_path)
    wait_phase(real_node, ns, "locked", {"Running"})

    ident = exec_in(real_node, ns, "locked", "id")
    assert ident.returncode == 0, ident.stderr
    assert ident.stdout.split()[:2] == ["uid=10001", "gid=10001"], ident.stdout

    limit = exec_in(real_node, ns, "locked", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert limit.returncode == 0, limit.stderr
    assert int(limit.stdout) == 96 * 1024 * 1024

    root_write = exec_in(real_node, ns, "locked", "touch", "/written-to-root")
    assert root_write.returncode != 0
    assert "Read-only file system" in root_write.stderr
    tmp_write = exec_in(real_node, ns, "locked", "sh", "-c", "echo ok > /tmp/x && cat /tmp/x")
    assert tmp_write.stdout.strip() == "ok", tmp_write.stderr


def test_pod_reaches_redis_and_the_api_server_on_the_bridge(
    real_node: RealNode, base_image: str, bridge_redis: RedisServer, tmp_path: Path
) -> None:
    ns = new_namespace(real_node)
    # Raw RESP and urllib: the base image has no client libraries, only Python.
    script = f"""
import json, os, socket, ssl, urllib.request
with socket.create_connection(("{bridge_redis.host}", {bridge_redis.port}), timeout=10) as s:
    s.sendall(b"*3\\r\\n$3\\r\\nSET\\r\\n$8\\r\\nfrom-pod\\r\\n$2\\r\\nhi\\r\\n")
    print("redis", s.recv(64))
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
review = {{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}}
request = urllib.request.Request(
    f"https://{{host}}:{{port}}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps(review).encode(),
    headers={{"Authorization": "Bearer " + open(sa + "/token").read(),
             "Content-Type": "application/json"}},
)
context = ssl.create_default_context(cafile=sa + "/ca.crt")
with urllib.request.urlopen(request, context=context, timeout=10) as reply:
    print("whoami", json.load(reply)["status"]["userInfo"]["username"])
"""
    manifest = python_pod(
        ns, "netcheck", base_image, script, container={"env": real_node.api_env()}
    )
    apply(real_node, manifest, tmp_path)
    done = wait_phase(real_node, ns, "netcheck", {"Succeeded", "Failed"})
    assert real_node.plane is not None
    logs = real_node.plane.kubectl("logs", "-n", ns, "netcheck")
    assert done["status"]["phase"] == "Succeeded", logs

    client = redis.Redis(host=bridge_redis.host, port=bridge_redis.port, socket_timeout=5)
    try:
        assert client.get("from-pod") == b"hi"
    finally:
        client.close()
    assert f"whoami system:serviceaccount:{ns}:default" in logs


def test_delete_sends_sigterm_and_kills_after_the_grace_period(
    real_node: RealNode, base_image: str, tmp_path: Path
) -> None:
    """One container stops cleanly on SIGTERM; one ignores it and is killed after its grace."""
    ns = new_namespace(real_node)
    cooperative = """
import signal, sys, time
def on_term(signum, frame):
    print("TERM received", flush=True)
    time.sleep(1)
    print("cleanup done", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("started", flush=True)
while True: time.sleep(0.1)
"""
    stubborn = """
import signal, time
signal.signal(signal.SIGTERM, lambda s, f: print(f"TERM at {time.time():.2f}", flush=True))
print("started", flush=True)
while True:
    print(f"tick {time.time():.2f}", flush=True)
    time.sleep(0.25)
"""
    grace = 4
    for name, script in (("cooperative", cooperative), ("stubborn", stubborn)):
        apply(
            real_node,
            python_pod(ns, name, base_image, script, terminationGracePeriodSeconds=grace),
            tmp_path,
        )
    for name in ("cooperative", "stubborn"):
        wait_phase(real_node, ns, name, {"Running"})
    # Follow the logs before deleting: a deleted Pod's logs go with it.
    followers = {
        name: subprocess.Popen(
            ["kubectl", f"--kubeconfig={real_node.kubeconfig}", "logs", "-f", "-n", ns, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name in ("cooperative", "stubborn")
    }
    time.sleep(1)  # both followers attached
    assert real_node.plane is not None
    real_node.plane.kubectl("delete", "pod", "-n", ns, "cooperative", "stubborn", "--wait=false")
    output = {name: proc.communicate(timeout=grace + 60)[0] for name, proc in followers.items()}

    assert output["cooperative"].splitlines()[-2:] == ["TERM received", "cleanup done"]

    lines = output["stubborn"].splitlines()
    terms = [float(line.split()[2]) for line in lines if line.startswith("TERM at")]
    assert len(terms) == 1, lines
    after = [float(line.split()[1]) for line in lines if line.startswith("tick")]
    after = [t for t in after if t > terms[0]]
    # It kept running through the grace period (not killed at once), then was killed.
    assert after, lines
    assert after[-1] - terms[0] >= grace - 1.0, lines
    assert after[-1] - terms[0] < grace + 10.0, lines
    assert pod_gone(real_node, ns, "stubborn")


def pod_gone(node: RealNode, ns: str, name: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pod(node, ns, name)
        except DevkitError:  # NotFound
            return True
        time.sleep(0.5)
    return False


def kubelet_chains() -> list[str]:
    found = []
    for table in ("filter", "nat", "mangle"):
        rules = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        found += [f"{table}: {r}" for r in rules.splitlines() if "KUBE-" in r]
    return found


def test_down_leaves_nothing_and_a_second_start_works(
    real_node: RealNode, base_image: str, tmp_path: Path
) -> None:
    """Stop the session's node, check the host is clean, start it again and run a Pod."""
    workdir = real_node.workdir
    ns = new_namespace(real_node)
    apply(real_node, python_pod(ns, "before", base_image, SLEEP_FOREVER), tmp_path)
    wait_phase(real_node, ns, "before", {"Running"})
    pids = json.loads((workdir / "node-state.json").read_text())["pids"]

    real_node.stop()

    assert not any(pid_alive(int(pid)) for pid in pids.values()), pids
    assert not node_network.bridge_exists(real_node.bridge), _who_made_the_bridge()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(workdir) not in mounts
    assert kubelet_chains() == []
    assert not Path("/var/lib/cni").exists()
    assert not Path("/var/lib/kubelet/device-plugins").exists()
    assert not workdir.exists()
    shims = subprocess.run(
        ["pgrep", "-f", f"containerd-shim-runc-v2.*{workdir}"], capture_output=True, check=False
    )
    assert shims.stdout == b""

    # Started as the fixture starts it: later tests get the same node back.
    real_node.start(owner_pid=os.getpid(), crds_dir=REPO / "crds")
    image = real_node.import_image(base_image)
    ns = new_namespace(real_node)
    apply(real_node, python_pod(ns, "after", image, "print('second start ok')"), tmp_path)
    done = wait_phase(real_node, ns, "after", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Succeeded"
    assert real_node.plane is not None
    assert real_node.plane.kubectl("logs", "-n", ns, "after").strip() == "second start ok"
    assert "jobqueues" in real_node.plane.kubectl("api-resources", "-o", "name")


def _who_made_the_bridge() -> str:
    """What a bridge left after stop says about itself, and who could have made it.

    (A second session's node waiting for the machine's one bridge takes it the
    moment this one lets go: the real-node tests must share one pytest worker.)
    """
    link = subprocess.run(
        ["ip", "-d", "-s", "link", "show", "jqbr0"], capture_output=True, text=True, check=False
    ).stdout
    ports = subprocess.run(
        ["ip", "link", "show", "master", "jqbr0"], capture_output=True, text=True, check=False
    ).stdout
    procs = subprocess.run(
        ["ps", "-eo", "pid,ppid,etimes,args"], capture_output=True, text=True, check=False
    ).stdout
    suspects = [
        line
        for line in procs.splitlines()
        if any(k in line for k in ("cni", "containerd", "kubelet", "bridge"))
    ]
    return f"bridge still there:\n{link}\nports:\n{ports}\nprocesses:\n" + "\n".join(suspects)
