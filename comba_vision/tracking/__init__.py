"""Single-object tracking with Comba backbones (one-stream, OSTrack-style).

``datasets`` reads GOT-10k and LaSOT in their official on-disk layouts; ``processing`` makes the template /
search crops and the training pairs.
"""
