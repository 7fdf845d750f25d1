#!/usr/bin/python3
"""kube_list.py: the python3-kubernetes baseline for tests/bench/kube_list.lua:
every pod of a namespace from the cluster KUBECONFIG names (the Kubernetes
double), all pages of 500 (limit/continue, as kubectl and Ferry page), with
Debian's python3-kubernetes: CoreV1Api.list_namespaced_pod, which deserializes
each page into model objects (V1Pod ...), or with --raw the same pages with
_preload_content=False and json.loads. Fails unless there are COUNT pods, all
Running. Prints one JSON line {"items": n}.
Usage: kube_list.py NAMESPACE COUNT [--raw]
"""

import json
import sys

import kubernetes


def main():
    namespace, count, raw = sys.argv[1], int(sys.argv[2]), "--raw" in sys.argv[3:]
    kubernetes.config.load_kube_config()
    api = kubernetes.client.CoreV1Api()
    phases, token = [], None
    while True:
        if raw:
            page = json.loads(api.list_namespaced_pod(namespace, limit=500, _continue=token,
                                                      _preload_content=False).data)
            phases += [p["status"]["phase"] for p in page["items"]]
            token = page["metadata"].get("continue")
        else:
            page = api.list_namespaced_pod(namespace, limit=500, _continue=token)
            phases += [p.status.phase for p in page.items]
            token = page.metadata._continue
        if not token:
            break
    running = phases.count("Running")
    if len(phases) != count or running != count:
        sys.exit(f"expected {count} Running pods, got {len(phases)} of which {running} Running")
    print(json.dumps({"items": len(phases)}))


if __name__ == "__main__":
    main()
