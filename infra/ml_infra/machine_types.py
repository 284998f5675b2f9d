"""The GPU machine types a pool may ask for, per cloud: which GPU they carry and how many.

Config validation uses this to refuse a GPU pool on a machine without that GPU (or a CPU
pool on a GPU machine) before anything is created. GPU types use GKE's accelerator names,
which are also what DAGs pass as `gpu_type` and what the `ml-platform/gpu-type` label says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuOffer:
    gpu_type: str
    counts: tuple[int, ...]  # GPUs per node the machine type can carry


# EC2: the GPUs are part of the instance type.
AWS_GPU_INSTANCES: dict[str, GpuOffer] = {
    "g4dn.xlarge": GpuOffer("nvidia-tesla-t4", (1,)),
    "g4dn.2xlarge": GpuOffer("nvidia-tesla-t4", (1,)),
    "g4dn.12xlarge": GpuOffer("nvidia-tesla-t4", (4,)),
    "g5.xlarge": GpuOffer("nvidia-a10g", (1,)),
    "g5.2xlarge": GpuOffer("nvidia-a10g", (1,)),
    "g5.12xlarge": GpuOffer("nvidia-a10g", (4,)),
    "g5.48xlarge": GpuOffer("nvidia-a10g", (8,)),
    "g6.xlarge": GpuOffer("nvidia-l4", (1,)),
    "g6.2xlarge": GpuOffer("nvidia-l4", (1,)),
    "g6.12xlarge": GpuOffer("nvidia-l4", (4,)),
    "g6.48xlarge": GpuOffer("nvidia-l4", (8,)),
    "g6e.xlarge": GpuOffer("nvidia-l40s", (1,)),
    "p4d.24xlarge": GpuOffer("nvidia-tesla-a100", (8,)),
    "p5.48xlarge": GpuOffer("nvidia-h100-80gb", (8,)),
}

# Compute Engine: G2/A2/A3 machines come with their GPUs; N1 machines take T4s as guest
# accelerators (1, 2 or 4 per VM).
GCP_GPU_MACHINES: dict[str, GpuOffer] = {
    "g2-standard-4": GpuOffer("nvidia-l4", (1,)),
    "g2-standard-8": GpuOffer("nvidia-l4", (1,)),
    "g2-standard-12": GpuOffer("nvidia-l4", (1,)),
    "g2-standard-24": GpuOffer("nvidia-l4", (2,)),
    "g2-standard-48": GpuOffer("nvidia-l4", (4,)),
    "a2-highgpu-1g": GpuOffer("nvidia-tesla-a100", (1,)),
    "a2-highgpu-2g": GpuOffer("nvidia-tesla-a100", (2,)),
    "a2-highgpu-4g": GpuOffer("nvidia-tesla-a100", (4,)),
    "a3-highgpu-8g": GpuOffer("nvidia-h100-80gb", (8,)),
    "n1-standard-4": GpuOffer("nvidia-tesla-t4", (1, 2, 4)),
    "n1-standard-8": GpuOffer("nvidia-tesla-t4", (1, 2, 4)),
    "n1-standard-16": GpuOffer("nvidia-tesla-t4", (1, 2, 4)),
}

# N1 machines only have GPUs when a pool attaches them, so they also make fine CPU pools.
GCP_ATTACHABLE_FAMILIES = ("n1-",)


def gpu_offer(cloud: str, machine_type: str) -> GpuOffer | None:
    """The GPUs `machine_type` carries on `cloud`, or None for a machine without GPUs."""
    catalog = AWS_GPU_INSTANCES if cloud == "aws" else GCP_GPU_MACHINES
    return catalog.get(machine_type)


def has_builtin_gpus(cloud: str, machine_type: str) -> bool:
    """Whether every node of this machine type has GPUs, asked for or not."""
    if gpu_offer(cloud, machine_type) is None:
        return False
    return not (cloud == "gcp" and machine_type.startswith(GCP_ATTACHABLE_FAMILIES))


def gpu_machine_types(cloud: str) -> list[str]:
    return sorted(AWS_GPU_INSTANCES if cloud == "aws" else GCP_GPU_MACHINES)
