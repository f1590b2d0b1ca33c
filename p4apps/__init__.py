"""P4 programs (RedPlane library and apps) and their control-plane configuration."""
