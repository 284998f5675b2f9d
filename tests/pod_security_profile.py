"""The Pod Security Standards' `restricted` profile (which includes `baseline`), as the API
server's PodSecurity admission applies it, for the tests of every pod the platform creates.

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ rather than
from the platform's code, so a pod that only looks right to ml_platform.pod_security fails
here. Works on the JSON the API server receives (camelCase keys): a pod, or a template's spec.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient

# restricted: the only volume types allowed.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
}


def as_document(pod: Any) -> dict[str, Any]:
    """A V1Pod (or a dict already in API form) as the API server receives it."""
    return pod if isinstance(pod, dict) else ApiClient().sanitize_for_serialization(pod)


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def restricted_violations(pod: Any) -> list[str]:
    """Each rule of `restricted` the pod breaks, as `container <name>: <rule>`; [] if none."""
    document = as_document(pod)
    spec = document.get("spec", document)
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"pod: {field} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"pod: sysctl {sysctl['name']} is not allowed")
    found += _common_violations("pod", pod_sc)
    for container in _containers(spec):
        name = f"container {container['name']}"
        sc = container.get("securityContext") or {}
        found += _common_violations(name, sc)
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"{name}: procMount {sc['procMount']}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{name}: hostPort")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true (container or pod level)")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp or 'unset'}")
    return found


def _common_violations(name: str, sc: dict[str, Any]) -> list[str]:
    """Rules that hold at pod and at container level alike."""
    found = []
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{name}: windowsOptions.hostProcess")
    if sc.get("runAsUser") == 0:
        found.append(f"{name}: runAsUser 0")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{name}: seccompProfile Unconfined")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{name}: appArmorProfile Unconfined")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{name}: seLinuxOptions {selinux}")
    return found
