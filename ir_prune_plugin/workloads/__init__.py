"""Workloads shared by the studies, the demo and the NNI trial: pretrained dense nets and their weights
(:mod:`.pretrained`, :mod:`.shipped`) and the figures (:mod:`.figures`). Below ``studies/`` and ``demo/``."""
