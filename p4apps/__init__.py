"""P4 programs (the fabric, the RedPlane library and its apps) and their control-plane config."""
import os

P4APPS_DIR = os.path.dirname(os.path.abspath(__file__))
LEAF_P4 = os.path.join(P4APPS_DIR, "fabric", "leaf.p4")
SPINE_P4 = os.path.join(P4APPS_DIR, "fabric", "spine.p4")
