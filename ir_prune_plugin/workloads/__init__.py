"""Workloads shared by the studies, the demo and the NNI trial: pretrained dense nets and their weights."""
