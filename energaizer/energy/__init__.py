"""Power x time -> energy, and the pipeline that chains the stages."""
