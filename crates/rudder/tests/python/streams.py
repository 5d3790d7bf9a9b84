"""The official Python client's exec and logs (WebSocket, v5.channel.k8s.io)
against a running pod named by argv[2]; prints "python streams: ok"."""
import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
pod = sys.argv[2]
v1 = client.CoreV1Api()

out = stream(v1.connect_get_namespaced_pod_exec, pod, "default",
             command=["sh", "-c", "echo out; echo err >&2"],
             stderr=True, stdin=False, stdout=True, tty=False)
assert sorted(out.splitlines()) == ["err", "out"], repr(out)

resp = stream(v1.connect_get_namespaced_pod_exec, pod, "default",
              command=["sh", "-c", "exit 4"],
              stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
resp.run_forever(timeout=30)
assert resp.returncode == 4, resp.returncode

resp = stream(v1.connect_get_namespaced_pod_exec, pod, "default",
              command=["cat"], stderr=True, stdin=True, stdout=True, tty=False,
              _preload_content=False)
resp.write_stdin("through stdin\n")
got = ""
while "through stdin" not in got and resp.is_open():
    resp.update(timeout=5)
    got += resp.read_stdout()
resp.close()
assert got == "through stdin\n", repr(got)

# v5 (the API server's translation): closing stdin ends `cat`.
resp = stream(v1.connect_get_namespaced_pod_exec, pod, "default",
              command=["sh", "-c", "cat; echo done"], stderr=True, stdin=True,
              stdout=True, tty=False, _preload_content=False)
assert resp.subprotocol == "v5.channel.k8s.io", resp.subprotocol
resp.write_stdin(b"bytes in\n")
resp.close_channel(0)
resp.run_forever(timeout=30)
assert resp.returncode == 0, resp.returncode
assert resp.read_stdout() == "bytes in\ndone\n"

log = v1.read_namespaced_pod_log(pod, "default", tail_lines=1)
assert log.startswith("line "), repr(log)
print("python streams: ok")
