"""Drives a Rudder API server with the official Python client.

Usage: client.py KUBECONFIG. Prints "python client: ok" when every check
passed; any failure raises (non-zero exit).
"""
import sys

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()

names = [n.metadata.name for n in core.list_namespace().items]
assert "default" in names and "kube-system" in names, names

cm = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}),
    data={"a": "1"},
)
core.create_namespaced_config_map("default", cm)
got = core.read_namespaced_config_map("py", "default")
assert got.data == {"a": "1"}, got.data
assert got.metadata.resource_version

# A dict body is sent as a strategic merge patch.
core.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
got = core.read_namespaced_config_map("py", "default")
assert got.data == {"a": "1", "b": "2"}, got.data

listed = core.list_namespaced_config_map("default", label_selector="from=python")
assert [i.metadata.name for i in listed.items] == ["py"], listed.items

events = []
for event in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1):
    events.append((event["type"], event["object"].metadata.name))
assert ("ADDED", "py") in events, events

try:
    core.create_namespaced_config_map("default", cm)
    raise AssertionError("a duplicate create succeeded")
except client.exceptions.ApiException as e:
    assert e.status == 409, e.status

deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1")]),
        ),
    ),
)
apps.create_namespaced_deployment("default", deployment)
apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
assert apps.read_namespaced_deployment("web", "default").spec.replicas == 3

core.delete_namespaced_config_map("py", "default")
try:
    core.read_namespaced_config_map("py", "default")
    raise AssertionError("the deleted ConfigMap is still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status

print("python client: ok")
