"""Datasets: COCO / PoseTrack readers, clip windows, top-down crops with augmentation.

Submodules are imported explicitly (``edgepose.data.posetrack`` ...) so reading
annotations never pulls torch; only ``edgepose.data.topdown`` needs it.
"""
