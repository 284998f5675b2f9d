"""Names the platform agrees on with the DAG library (dags/ml_platform) and with NVIDIA's tools.

The contract tests check these against ml_platform's own constants, so the two cannot drift.
"""

from __future__ import annotations

POOL_LABEL = "ml-platform/pool"
GPU_TYPE_LABEL = "ml-platform/gpu-type"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"  # also what NVIDIA's device plugin selects on
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Label the platform's container tasks carry (ml_platform.container): which image a pod runs.
IMAGE_LABEL = "ml-platform/image"
# ...and whose team's pod it is (a team image's pods; a team's service account).
TEAM_LABEL = "ml-platform/team"
# kind's GPU emulation: the fake GPU operator puts its device plugin on nodes with this label.
FAKE_GPU_POOL_LABEL = "run.ai/simulated-gpu-node-pool"
