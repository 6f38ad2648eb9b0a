"""Power x time -> energy per row and its breakdown (static, compute, memory, communication, overhead)."""
