"""Evaluation: COCO OKS AP (pycocotools), PoseTrack mAP (poseval's protocol), PCK, tables."""
